//! The end-to-end suite: a real server on 127.0.0.1:0 per test, real components, real
//! databases. One test binary, one module per area: 39 binaries of ~300 MB each filled CI's
//! disk and spent minutes linking. `traces` stays a binary of its own because it installs the
//! process-wide tracing subscriber.

mod api_errors;
mod api_jobs;
mod backups;
mod billing;
mod cache;
mod cancel;
mod dashboard;
mod fair_shares;
mod generations;
mod holds;
mod holds_runs;
mod hostile_bounds;
mod hostile_provider_keys;
mod hostile_reads;
mod hostile_renders;
mod hostile_storage;
mod hostile_webhooks;
mod hot_swap;
mod journal_steps;
mod languages;
mod maintenance;
mod money_across_hosts;
mod production_templates;
mod providers;
mod publish_turns;
mod registry_s3;
mod remotion;
mod renders;
mod retries;
mod sandbox;
mod storage;
mod template_compositions;
mod voices;
mod webhooks;
