//! The real `vidfarm` binary run as an operator runs it: processes started, killed and
//! restarted, talking HTTP. One test binary, one module per area.

mod billing_crash;
mod cli;
mod common;
mod doctor;
mod durability;
mod examples;
mod frozen_host;
mod generation_crash;
mod multi_host;
mod multi_host_control;
mod narration_crash;
mod operator_cli;
mod production;
mod registry_cli;
mod request_ids;
