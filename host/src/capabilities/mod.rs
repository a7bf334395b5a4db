//! The host side of the WIT world: one module per interface, each implementing the generated
//! `Host` trait on the per-run [`HostState`] and calling a backend behind a small trait, so
//! the engine, the dev runner and the tests plug in their own (Spin's "factor" shape).

mod billing;
mod inert;
mod jobs;
pub(crate) mod logging;
mod no_renderer;
mod providers;
mod remotion;
mod speech;
mod storage;
mod types;

use crate::runtime::bindings::{
    billing as wit_billing, jobs as wit_jobs, providers as wit_providers, remotion as wit_remotion,
};
pub use crate::runtime::{HostTrap, JobScope};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use crate::runtime::HostState;
pub use no_renderer::NoRenderer;

/// What a backend returns: its answer (which may itself be a WIT error for the guest), or a
/// reason to stop the run (fail with a code, or suspend).
pub type BackendResult<T> = Result<T, HostTrap>;

/// Every backend one run talks to. Cheap to clone; shared by all runs of a host.
#[derive(Clone)]
pub struct Capabilities {
    pub events: Arc<dyn EventSink>,
    pub storage: Arc<dyn ObjectStore>,
    pub billing: Arc<dyn BillingLedger>,
    pub providers: Arc<dyn ProviderGateway>,
    pub renderer: Arc<dyn Renderer>,
    pub jobs: Arc<dyn JobControl>,
    pub journal: Arc<dyn JournalStore>,
}

/// One structured job event (spec "Logs"): timestamp is added by the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub level: String,
    pub message: String,
    pub metadata: serde_json::Value,
    /// Set on progress events, in [0, 1].
    pub progress: Option<f64>,
    /// Set when the event announces an artifact (`{key, url, size, kind}`).
    pub artifact: Option<serde_json::Value>,
}

/// Where an event sits in a job's history: after `position` journaled effects, the
/// `ordinal`-th event. A replay re-emits the same keys, so sinks drop what they already have:
/// events happen exactly once even across crashes and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub position: u32,
    pub ordinal: u32,
}

/// Where job events go: the job's event table, or a list in the dev runner. An event whose
/// key the job already has is ignored.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn emit(&self, job: &JobScope, key: EventKey, event: JobEvent) -> BackendResult<()>;
    /// The keys of the events the job's earlier runs stored.
    async fn stored_keys(&self, job_id: &str) -> BackendResult<Vec<EventKey>>;
}

/// Object storage addressed by full keys (already validated and prefixed by the capability).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Store the bytes; returns the size written.
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<u64, StoreError>;
    /// Open an object for streaming: its size and its bytes as they arrive, never the whole
    /// object in memory.
    async fn open(&self, key: &str) -> Result<ObjectReader, StoreError>;
    /// The whole object when it is at most `max` bytes; `TooLarge` (without reading it) when
    /// it is larger.
    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, StoreError> {
        use tokio::io::AsyncReadExt;
        let object = self.open(key).await?;
        if object.size > max {
            return Err(StoreError::TooLarge { limit: max });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(object.size).unwrap_or(0));
        // A backend's size could be stale: never read past the cap whatever it said.
        object.body.take(max + 1).read_to_end(&mut bytes).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(StoreError::TooLarge { limit: max });
        }
        Ok(bytes)
    }
    /// Copy an object of at most `max` bytes to a local file, streamed; returns its size.
    async fn get_to_file(&self, key: &str, dest: &std::path::Path, max: u64) -> Result<u64, StoreError> {
        use tokio::io::AsyncReadExt;
        let object = self.open(key).await?;
        if object.size > max {
            return Err(StoreError::TooLarge { limit: max });
        }
        let unavailable = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(unavailable)?;
        let copied = tokio::io::copy(&mut object.body.take(max + 1), &mut file).await.map_err(unavailable)?;
        if copied > max {
            return Err(StoreError::TooLarge { limit: max });
        }
        Ok(copied)
    }
    /// Store a local file (a render's output) without holding it in memory where the backend
    /// can stream it; returns the size written.
    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64, StoreError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {}: {e}", path.display())))?;
        self.put(key, bytes, content_type).await
    }
    /// A signed URL a customer can fetch the object from for a while, when the backend can
    /// give one.
    async fn public_url(&self, key: &str) -> Option<String>;
    /// Remove an object (gone already is fine).
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(format!("this store cannot delete `{key}`")))
    }
    /// A signed URL a customer can upload the object with, when the backend can give one.
    /// With `size`, the URL accepts exactly that many bytes (S3 signs the content length).
    async fn upload_url(&self, _key: &str, _content_type: &str, _size: Option<u64>) -> Option<UploadUrl> {
        None
    }
}

/// Where and how to upload one object.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadUrl {
    pub url: String,
    pub method: String,
    /// Headers the upload must carry (a presigned S3 PUT signs its content type).
    pub headers: Vec<(String, String)>,
    /// How long the URL works.
    pub ttl: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no object at `{0}`")]
    NotFound(String),
    #[error("the object is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Unavailable(String),
}

/// An object being read: its size (from the backend, before any byte is read) and its bytes.
pub struct ObjectReader {
    pub size: u64,
    pub body: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
}

/// Billable events. The ledger decides charges and enforces the customer's limits.
#[async_trait]
pub trait BillingLedger: Send + Sync {
    /// Record `event`, the job's effect number `seq`: a second call with the same job and
    /// `seq` (a replay of an effect that was applied but not journaled) changes nothing.
    async fn record(&self, job: &JobScope, seq: u32, event: &wit_billing::BillingEvent) -> BackendResult<()>;

    /// Record `bytes` stored at `key` against the customer's quota, with the host's own
    /// `storage_write` charge under `effect_key` (unique to the effect that stores them: a
    /// replay changes nothing), before the write: a customer at their money limit or past
    /// their quota stops before it (`storage_quota_exceeded`). `paid_for` bytes (audio a
    /// provider already billed) are recorded even past the quota, as a render's output is; the
    /// effect checked [`BillingLedger::check_storage_room`] before paying. Backends that do not
    /// bill storage ignore it.
    async fn record_storage_write(
        &self,
        _job: &JobScope,
        _effect_key: &str,
        _key: &str,
        _bytes: u64,
        _paid_for: bool,
    ) -> BackendResult<()> {
        Ok(())
    }

    /// Refuse (`storage_quota_exceeded`) when the customer is at or past their storage quota:
    /// for effects whose size is known only after they are paid for.
    async fn check_storage_room(&self, _job: &JobScope) -> BackendResult<()> {
        Ok(())
    }
}

/// One provider call, as a template asked for it.
#[derive(Debug, Clone)]
pub enum ProviderCall {
    Text(wit_providers::TextRequest),
    Image(wit_providers::ImageRequest),
    Layout(wit_providers::LayoutRequest),
    Speech(SpeechCall),
}

/// Text to speech, as `providers.generate-speech` or `speech.speak` asked for it: one host path
/// for both, so they are leased, held, billed and stored alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeechCall {
    pub provider: crate::providers::Provider,
    pub model: String,
    pub text: String,
    pub voice: String,
    /// Where the audio is stored, relative to the job's prefix.
    pub key: String,
    pub instructions: Option<String>,
    /// ElevenLabs' `voice_settings`, a JSON object (checked before any key is leased).
    pub voice_settings: Option<String>,
    pub seed: Option<u32>,
}

impl From<wit_providers::SpeechRequest> for SpeechCall {
    fn from(r: wit_providers::SpeechRequest) -> Self {
        Self {
            provider: r.provider.into(),
            model: r.model,
            text: r.text,
            voice: r.voice,
            key: r.key,
            instructions: r.instructions,
            voice_settings: None,
            seed: None,
        }
    }
}

impl From<crate::runtime::bindings::speech::SpeakRequest> for SpeechCall {
    fn from(r: crate::runtime::bindings::speech::SpeakRequest) -> Self {
        Self {
            provider: r.provider.into(),
            model: r.model,
            text: r.text,
            voice: r.voice,
            key: r.key,
            instructions: r.instructions,
            voice_settings: r.voice_settings,
            seed: r.seed,
        }
    }
}

/// Spoken audio, before the capability stores it.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    /// A 16-bit PCM WAV with exact sizes.
    pub wav: Vec<u8>,
    /// Counted from its samples.
    pub duration_seconds: f64,
}

/// The answer to a [`ProviderCall`] (of the same kind).
#[derive(Debug, Clone)]
pub enum ProviderAnswer {
    Text(wit_providers::TextResponse),
    Image(wit_providers::ImageResponse),
    Layout(wit_providers::LayoutResponse),
    Speech(SpeechAudio),
}

/// AI providers behind key leasing and rate limits.
#[async_trait]
pub trait ProviderGateway: Send + Sync {
    /// Make `call` for the job; `seq` is the effect number it will be journaled under (the
    /// gateway's own charge for the call is keyed by it, so a replay never charges twice).
    async fn call(
        &self,
        job: &JobScope,
        seq: u32,
        call: &ProviderCall,
    ) -> BackendResult<Result<ProviderAnswer, wit_providers::ProviderError>>;
}

/// Remotion and FFmpeg renders.
#[async_trait]
pub trait Renderer: Send + Sync {
    /// Render `task` for the job's effect `seq` (stable across replays: a replay finds the
    /// render it started instead of starting another). `output_key` is relative to the job's
    /// prefix. A render still running suspends the job.
    async fn render(
        &self,
        job: &JobScope,
        seq: u32,
        task: &crate::render::RenderTask,
        output_key: Option<&str>,
    ) -> BackendResult<Result<wit_remotion::RenderResult, wit_remotion::RenderError>>;
}

/// Child jobs and human waits.
#[async_trait]
pub trait JobControl: Send + Sync {
    /// Check a child job's request and make the row that creates it (the capability has
    /// already checked the per-job cap). `ordinal` (1, 2, … within the job) is the same on
    /// every replay: the child's id derives from it.
    async fn prepare_child(
        &self,
        job: &JobScope,
        ordinal: u32,
        request: &wit_jobs::ChildRequest,
    ) -> BackendResult<Result<PreparedChild, wit_jobs::JobsError>>;
    /// The children's results when all have ended; otherwise suspend the job on them.
    async fn await_children(
        &self,
        job: &JobScope,
        ids: &[String],
    ) -> BackendResult<Result<Vec<wit_jobs::ChildResult>, wit_jobs::JobsError>>;
    /// The human's answer when there is one; otherwise suspend the job for it.
    async fn await_human(&self, job: &JobScope, prompt: &str) -> BackendResult<Result<String, wit_jobs::JobsError>>;
}

/// A child job checked and ready to be created.
pub struct PreparedChild {
    /// Its id: the same on every replay.
    pub id: String,
    /// The row that creates it, written in the transaction that journals the effect
    /// ([`JournalStore::append`]): after a crash both are there or neither, never a child its
    /// parent's journal does not know of. `None` when the backend created it already (the dev
    /// runner's memory, where there is no crash to survive).
    pub row: Option<Box<crate::db::jobs::NewJob>>,
}

/// One journaled effect of a job: what was asked (digest) and what came back (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u32,
    pub kind: String,
    pub request_digest: String,
    pub result: String,
}

/// Durable storage of journals (DESIGN.md §4).
#[async_trait]
pub trait JournalStore: Send + Sync {
    async fn load(&self, job_id: &str) -> BackendResult<Vec<JournalEntry>>;
    /// Append `entry`, and create `child` (an effect's [`PreparedChild::row`]) with it.
    async fn append(
        &self,
        job: &JobScope,
        entry: &JournalEntry,
        child: Option<&crate::db::jobs::NewJob>,
    ) -> BackendResult<()>;
}
