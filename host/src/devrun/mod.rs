//! The dev runner behind `vidfarm template run`: one operation in the real sandbox, with
//! local backends (storage in a directory, the dev-echo provider, in-memory journal). Waits
//! suspend and replay exactly as in the job engine; children run in the same process.

pub mod backends;
pub mod build;
pub mod sdk;

use crate::capabilities::Capabilities;
use crate::providers::DevEchoProvider;
use crate::runtime::bindings::jobs::{ChildOutcome, ChildResult};
use crate::runtime::bindings::types::{Customer, Environment, JobContext, TemplateError};
use crate::runtime::{LoadedTemplate, RunError, RunOutcome, RunRequest, Runtime, Suspension};
use crate::storage::LocalObjectStore;
use backends::*;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How to run.
pub struct DevRunOptions {
    /// Artifacts are written under `<data_dir>/objects`.
    pub data_dir: PathBuf,
    /// The answer to give a job that waits for a human (JSON text).
    pub answer: Option<String>,
    pub env: Environment,
    /// The template config the job sees.
    pub config: Value,
    /// Renders run in process with these settings; `None`: renders answer `unavailable`.
    pub render: Option<crate::render::RenderSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevRunError {
    #[error("template `{template}` has no operation `{operation}` (it has: {available})")]
    UnknownOperation { template: String, operation: String, available: String },
    #[error("the payload does not match the input schema of `{operation}`: {problems}")]
    InvalidPayload { operation: String, problems: String },
    #[error("the config does not match the template's config schema: {0}")]
    InvalidConfig(String),
    #[error("local storage is unusable: {0}")]
    Storage(#[from] std::io::Error),
}

/// Everything that happened, printed as JSON by the CLI.
pub struct DevRunReport {
    pub outcome: RunOutcome,
    pub fuel_consumed: u64,
    events: Arc<MemoryEvents>,
    billing: Arc<MemoryBilling>,
}

impl DevRunReport {
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, RunOutcome::Succeeded(_))
    }

    pub fn to_json(&self) -> Value {
        let (status, output, error) = match &self.outcome {
            RunOutcome::Succeeded(v) => ("succeeded", v.clone(), Value::Null),
            RunOutcome::Failed(e) => ("failed", Value::Null, e.to_json()),
            other => ("failed", Value::Null, json!({ "code": "host_fault", "message": format!("{other:?}") })),
        };
        let events: Vec<Value> = lock(&self.events.0)
            .iter()
            .map(|(job_id, e)| {
                json!({ "job_id": job_id, "level": e.level, "message": e.message, "metadata": e.metadata,
                        "progress": e.progress, "artifact": e.artifact })
            })
            .collect();
        let billing: Vec<Value> =
            lock(&self.billing.0).iter().map(|(job_id, e)| json!({ "job_id": job_id, "event": e })).collect();
        json!({ "status": status, "output": output, "error": error, "events": events,
                "billing": billing, "fuel_consumed": self.fuel_consumed })
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Session<'a> {
    runtime: &'a Runtime,
    template: &'a LoadedTemplate,
    options: &'a DevRunOptions,
    caps: Arc<Capabilities>,
    jobs: Arc<LocalJobs>,
    fuel: std::sync::atomic::AtomicU64,
}

/// Run `operation` with `payload` to the end (children and replays included).
pub async fn run(
    runtime: &Runtime,
    template: &LoadedTemplate,
    operation: &str,
    payload: Value,
    options: &DevRunOptions,
) -> Result<DevRunReport, DevRunError> {
    check_request(template, operation, &payload)?;
    let config_problems = template.validate_config(&options.config);
    if !config_problems.is_empty() {
        return Err(DevRunError::InvalidConfig(describe(&config_problems)));
    }
    let (events, billing, jobs) =
        (Arc::new(MemoryEvents::default()), Arc::new(MemoryBilling::default()), Arc::new(LocalJobs::default()));
    let storage: Arc<dyn crate::capabilities::ObjectStore> =
        Arc::new(LocalObjectStore::new(options.data_dir.join("objects"), None)?);
    let renderer: Arc<dyn crate::capabilities::Renderer> = match &options.render {
        Some(settings) => {
            let mut pipeline = crate::render::Pipeline::new(settings.clone(), storage.clone(), None);
            // A template with its own compositions: `template run` unpacked them here.
            if template.bundle.is_some() {
                let registry = vidfarm_registry::ArtifactStore::dir(options.data_dir.join("registry"))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let dir = options.data_dir.join("bundles");
                pipeline = pipeline.with_bundles(crate::render::bundles::TemplateBundles { registry, dir });
            }
            Arc::new(crate::render::InlineRenderer { pipeline: Arc::new(pipeline) })
        }
        None => Arc::new(NoRenderer),
    };
    let caps = Arc::new(Capabilities {
        events: events.clone(),
        storage,
        billing: billing.clone(),
        providers: Arc::new(DevEchoProvider),
        renderer,
        jobs: jobs.clone(),
        journal: Arc::new(MemoryJournal::default()),
    });
    let session = Session { runtime, template, options, caps, jobs, fuel: Default::default() };
    let job_id = format!("dev_{}", uuid::Uuid::now_v7().simple());
    let outcome = session.run_job(job_id, None, operation.to_string(), None, payload).await;
    let fuel_consumed = session.fuel.into_inner();
    Ok(DevRunReport { outcome, fuel_consumed, events, billing })
}

fn check_request(template: &LoadedTemplate, operation: &str, payload: &Value) -> Result<(), DevRunError> {
    match template.validate_input(operation, payload) {
        None => Err(DevRunError::UnknownOperation {
            template: template.manifest.id.clone(),
            operation: operation.into(),
            available: template.manifest.operations.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
        Some(problems) if !problems.is_empty() => {
            Err(DevRunError::InvalidPayload { operation: operation.into(), problems: describe(&problems) })
        }
        Some(_) => Ok(()),
    }
}

fn describe(problems: &[crate::runtime::SchemaViolation]) -> String {
    problems
        .iter()
        .map(|p| format!("{} {}", if p.field.is_empty() { "(root)" } else { &p.field }, p.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Session<'_> {
    fn run_job(
        &self,
        job_id: String,
        parent: Option<String>,
        operation: String,
        workflow: Option<String>,
        payload: Value,
    ) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async move {
            let Some(op) = self.template.operation(&operation) else {
                return RunOutcome::Failed(RunError::Template {
                    code: "unknown_operation".into(),
                    message: format!("no operation `{operation}`"),
                    details: None,
                });
            };
            let limits = self.runtime.config().defaults.for_operation(&op.limits, &self.runtime.config().maxima);
            let mut context = JobContext {
                job_id: job_id.clone(),
                template_id: self.template.manifest.id.clone(),
                template_version: self.template.manifest.version.clone(),
                operation: operation.clone(),
                workflow: workflow.unwrap_or_else(|| op.workflow.clone()),
                parent_job_id: parent,
                customer: Customer { id: "dev".into(), name: "Developer".into() },
                attempt: 1,
                env: self.options.env,
                config: self.options.config.to_string(),
            };
            let start_ms = now_ms();
            loop {
                let request = RunRequest {
                    workflow: context.workflow.clone(),
                    context: context.clone(),
                    input: payload.to_string(),
                    limits,
                    start_ms,
                    cancel: CancellationToken::new(),
                    lease_token: String::new(),
                    journaled: None,
                };
                let report = self.runtime.run(self.template, request, self.caps.clone()).await;
                self.fuel.fetch_add(report.fuel_consumed, std::sync::atomic::Ordering::Relaxed);
                match report.outcome {
                    RunOutcome::Suspended(Suspension::Children { ids }) => self.run_children(&ids).await,
                    RunOutcome::Suspended(Suspension::Human { prompt }) => match &self.options.answer {
                        Some(answer) => {
                            lock(&self.jobs.answers).insert(job_id.clone(), answer.clone());
                        }
                        None => {
                            return RunOutcome::Failed(RunError::Template {
                                code: "waiting_for_human".into(),
                                message: "the job waits for a human answer: pass --answer '<json>'".into(),
                                details: Some(prompt),
                            });
                        }
                    },
                    RunOutcome::Suspended(Suspension::Deferred { until_ms, .. }) => {
                        let wait = u64::try_from(until_ms - now_ms()).unwrap_or(0);
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                    other => return other,
                }
                context.attempt += 1;
            }
        })
    }

    async fn run_children(&self, ids: &[String]) {
        for id in ids {
            let child = lock(&self.jobs.children).iter().find(|c| &c.id == id).cloned();
            let Some(child) = child else { continue };
            let payload: Value = serde_json::from_str(&child.request.payload).unwrap_or(Value::Null);
            let outcome = match check_request(self.template, &child.request.operation, &payload) {
                Err(e) => RunOutcome::Failed(RunError::Template {
                    code: "invalid_payload".into(),
                    message: e.to_string(),
                    details: None,
                }),
                Ok(()) => {
                    self.run_job(
                        child.id.clone(),
                        Some(child.parent.clone()),
                        child.request.operation.clone(),
                        child.request.workflow.clone(),
                        payload,
                    )
                    .await
                }
            };
            let result = ChildResult { job_id: child.id.clone(), outcome: child_outcome(outcome) };
            if let Some(entry) = lock(&self.jobs.children).iter_mut().find(|c| c.id == child.id) {
                entry.result = Some(result);
            }
        }
    }
}

fn child_outcome(outcome: RunOutcome) -> ChildOutcome {
    match outcome {
        RunOutcome::Succeeded(v) => ChildOutcome::Succeeded(v.to_string()),
        RunOutcome::Failed(RunError::Cancelled) => ChildOutcome::Cancelled,
        RunOutcome::Failed(e) => ChildOutcome::Failed(TemplateError {
            code: e.code().into(),
            message: e.message(),
            details: e.details().map(|d| d.to_string()),
        }),
        other => ChildOutcome::Failed(TemplateError {
            code: "host_fault".into(),
            message: format!("{other:?}"),
            details: None,
        }),
    }
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos().div_euclid(1_000_000) as i64
}
