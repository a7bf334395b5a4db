//! Renders: FFmpeg for JSON render specs (seed 001) and Remotion compositions (local Node +
//! Chromium, or Lambda). A render is long, so it does not run inside the job's instance: the
//! `remotion` capability records it (`renders` row, keyed by the job's effect number) and the
//! job suspends in `waiting_for_child`; the render worker runs it, reports progress as job
//! events, stores the output, charges a `render` event and wakes the job, whose replay then
//! receives the result and journals it. A crash re-runs an unfinished render, never a
//! finished one; cancelling the job kills the render's process. A provider's video generation
//! (Veo) is a row of the same queue (`kind = 'generation'`), claimed into slots of its own.

pub mod bundles;
mod ffmpeg;
mod pipeline;
mod process;
mod remotion;
mod service;
mod sources;
pub mod spec;
mod speed;
pub mod timeline;
pub mod worker;

pub use ffmpeg::Ffmpeg;
pub use pipeline::{Pipeline, RenderTask, Rendered};
pub use remotion::{RemotionMode, RemotionSettings};
pub use service::{InlineRenderer, RenderService};

use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How renders run on this host.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub ffmpeg: Ffmpeg,
    /// `None`: Remotion renders answer `unavailable`.
    pub remotion: Option<RemotionSettings>,
    /// Renders one process runs at once (each is a whole FFmpeg or Chromium).
    pub slots: u32,
    /// Renders one customer may have running at once, unless the operator set theirs.
    pub per_customer: u32,
    /// Video generations one process polls at once (each waits on a provider, not a core).
    pub generation_slots: u32,
    /// Video generations one customer may have running at once.
    pub generation_per_customer: u32,
    /// What a minute of rendered output costs the platform (`render` events).
    pub usd_per_minute: f64,
    /// The longest output a render may produce (seconds).
    pub max_seconds: f64,
    /// One render attempt's deadline.
    pub timeout: Duration,
    /// How long a claimed render is held without a heartbeat (a dead worker's render is
    /// re-run after it).
    pub lease: Duration,
    /// Starts of one render before it fails (a render that keeps killing its worker).
    pub max_attempts: i64,
    /// Sources may be on loopback or private addresses (development only: SSRF).
    pub allow_private_sources: bool,
    /// Scratch space for sources and outputs (deleted after each render); empty: under the
    /// data dir.
    pub work_dir: PathBuf,
    /// The largest file a render process may write (its output), bytes.
    pub max_output_bytes: u64,
}

impl RenderSettings {
    /// The folder of the local Remotion renderer (`render.mjs`, its `node_modules`), which also
    /// bundles templates' compositions; none when Remotion is off or on Lambda.
    pub fn local_renderer_dir(&self) -> Option<std::path::PathBuf> {
        let remotion = self.remotion.as_ref().filter(|r| r.mode == RemotionMode::Local)?;
        remotion.script.parent().map(std::path::Path::to_path_buf)
    }

    /// The limits of one render process: the render timeout's worth of CPU on every core (so
    /// the limit never cuts a render the timeout would allow), the output cap, and for FFmpeg
    /// 4 GiB of address space.
    pub(crate) fn process_limits(&self, address_space: bool) -> process::ProcessLimits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        process::ProcessLimits {
            cpu_seconds: self.timeout.as_secs().max(1) * cores,
            file_bytes: self.max_output_bytes,
            address_space_bytes: address_space.then_some(4 << 30),
        }
    }
}

/// Where a render stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// In [0, 1], never going back.
    pub fraction: f64,
    pub stage: &'static str,
    /// The output's length once the renderer knows it (0 before): what a render cut short is
    /// charged a share of.
    pub output_seconds: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Self { fraction: 0.0, stage: "queued", output_seconds: 0.0 }
    }
}

/// Why a render did not produce its output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The request, the spec or a source is unusable (names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the render was cancelled")]
    Cancelled,
    /// A generation found no usable provider key of the customer's.
    #[error("{0}")]
    NoKey(String),
}

impl Failure {
    pub fn to_json(&self) -> serde_json::Value {
        let kind = match self {
            Failure::Invalid(_) => "invalid_request",
            Failure::Failed(_) => "failed",
            Failure::Unavailable(_) => "unavailable",
            Failure::Cancelled => "cancelled",
            Failure::NoKey(_) => "no_valid_key",
        };
        serde_json::json!({ "kind": kind, "message": self.to_string() })
    }

    pub fn from_json(value: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
        let message = v["message"].as_str().unwrap_or("the render failed").to_string();
        match v["kind"].as_str() {
            Some("invalid_request") => Failure::Invalid(message),
            Some("unavailable") => Failure::Unavailable(message),
            Some("cancelled") => Failure::Cancelled,
            Some("no_valid_key") => Failure::NoKey(message),
            _ => Failure::Failed(message),
        }
    }
}

/// Whose render it is: where its sources may come from and where its output goes.
#[derive(Debug, Clone)]
pub struct RenderScope {
    pub render_id: String,
    pub job_id: String,
    /// Whose keys a generation leases.
    pub customer_id: String,
    /// `templates/:templateId/users/:customerId/jobs/:jobId`
    pub artifact_prefix: String,
    /// `customers/:customerId/workspace`
    pub workspace_prefix: String,
    /// What a render running elsewhere (Remotion Lambda) needs to outlive this attempt.
    pub remote: Remote,
}

/// A render that runs elsewhere (Remotion Lambda) is paid for when it starts there. Its id is
/// stored on the render's row as soon as the backend names it, and an attempt that finds one
/// resumes that render (polls it, downloads its output) instead of starting, and paying for,
/// another: a host that stops or dies mid-render costs the customer nothing twice.
#[derive(Debug, Clone, Default)]
pub struct Remote {
    /// The id an earlier attempt started the render under (the row's `external_id`).
    pub resume: Option<String>,
    /// Where the backend sends the id once it has started the render (the worker stores it).
    pub started: Option<watch::Sender<Option<String>>>,
    /// Cancelled when this host shuts down: the remote render is left running for the next
    /// attempt to resume, not cancelled with the process that watches it.
    pub detach: CancellationToken,
    /// The row this attempt holds, for work that must write its id itself before going on (a
    /// generation: see `providers::video_runs`).
    pub row: Option<RowLease>,
}

/// A render row under this attempt's lease.
#[derive(Debug, Clone)]
pub struct RowLease {
    pub render_id: String,
    pub token: String,
    /// `<job id>:<seq>`: the key of the effect's hold.
    pub effect_key: String,
}

impl RenderScope {
    pub fn new(render_id: &str, job_id: &str, template_id: &str, customer_id: &str) -> Self {
        Self {
            render_id: render_id.to_string(),
            job_id: job_id.to_string(),
            customer_id: customer_id.to_string(),
            artifact_prefix: format!("templates/{template_id}/users/{customer_id}/jobs/{job_id}"),
            workspace_prefix: format!("customers/{customer_id}/workspace"),
            remote: Remote::default(),
        }
    }
}
