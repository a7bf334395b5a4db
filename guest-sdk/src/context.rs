//! The context a workflow receives: the spec's `TemplateJobContext`, one handle per capability.

use crate::TemplateError;
use crate::bindings::vidfarm::template::{
    billing, jobs, logging,
    logging::Level,
    providers::{self, Provider},
    remotion, speech, storage,
    types::{Customer, Environment, JobContext},
};
use serde::{Serialize, de::DeserializeOwned};

/// Everything a workflow can know and do. Handles are cheap; every effect goes to the host.
pub struct Context {
    /// The job this run belongs to (ids, operation, attempt).
    pub job: JobContext,
    /// `development` or `production`: where keys come from and how strict the host is.
    pub env: Environment,
    /// Who the job runs for.
    pub customer: Customer,
    pub logger: Logger,
    pub storage: Storage,
    pub billing: Billing,
    pub providers: Providers,
    pub speech: Speech,
    pub remotion: Remotion,
    pub jobs: Jobs,
}

impl Context {
    pub(crate) fn new(job: JobContext) -> Self {
        Self {
            env: job.env,
            customer: job.customer.clone(),
            job,
            logger: Logger,
            storage: Storage,
            billing: Billing,
            providers: Providers,
            speech: Speech,
            remotion: Remotion,
            jobs: Jobs,
        }
    }

    /// The customer's template config, decoded (missing fields take their serde defaults).
    pub fn config<C: DeserializeOwned>(&self) -> Result<C, TemplateError> {
        serde_json::from_str(&self.job.config).map_err(|e| TemplateError::new("invalid_config", e.to_string()))
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Structured job events and progress.
pub struct Logger;

impl Logger {
    pub fn debug(&self, message: &str, metadata: serde_json::Value) {
        logging::log(Level::Debug, message, &metadata.to_string());
    }
    pub fn info(&self, message: &str, metadata: serde_json::Value) {
        logging::log(Level::Info, message, &metadata.to_string());
    }
    pub fn warn(&self, message: &str, metadata: serde_json::Value) {
        logging::log(Level::Warn, message, &metadata.to_string());
    }
    pub fn error(&self, message: &str, metadata: serde_json::Value) {
        logging::log(Level::Error, message, &metadata.to_string());
    }
    /// `fraction` in [0, 1].
    pub fn progress(&self, fraction: f64, message: &str) {
        logging::progress(fraction, message, "{}");
    }
    /// Progress with metadata (frames done, the step's name): kept on the progress event.
    pub fn progress_with(&self, fraction: f64, message: &str, metadata: serde_json::Value) {
        logging::progress(fraction, message, &metadata.to_string());
    }
}

/// Artifacts under the job's prefix, and the customer's workspace (read-only).
pub struct Storage;

impl Storage {
    pub fn put_bytes(
        &self,
        key: &str,
        bytes: &[u8],
        options: &storage::PutOptions,
    ) -> Result<storage::StoredObject, TemplateError> {
        Ok(storage::put(key, bytes, options)?)
    }
    pub fn put_text(&self, key: &str, text: &str) -> Result<storage::StoredObject, TemplateError> {
        self.put_bytes(key, text.as_bytes(), &options("text/plain; charset=utf-8"))
    }
    pub fn put_json(&self, key: &str, value: &impl Serialize) -> Result<storage::StoredObject, TemplateError> {
        self.put_bytes(key, to_json(value).as_bytes(), &options("application/json"))
    }
    pub fn get(&self, key: &str) -> Result<Vec<u8>, TemplateError> {
        Ok(storage::get(key)?)
    }
    pub fn read_workspace(&self, key: &str) -> Result<Vec<u8>, TemplateError> {
        Ok(storage::read_workspace(key)?)
    }
    pub fn public_url(&self, key: &str) -> Result<Option<String>, TemplateError> {
        Ok(storage::public_url(key)?)
    }
}

fn options(content_type: &str) -> storage::PutOptions {
    storage::PutOptions { content_type: content_type.into(), kind: None, metadata: "{}".into() }
}

/// Billable events (the host adds its own for providers, renders, storage and CPU).
pub struct Billing;

impl Billing {
    pub fn record(&self, event: &billing::BillingEvent) -> Result<(), TemplateError> {
        Ok(billing::record(event)?)
    }
}

/// AI providers, through the customer's leased keys.
pub struct Providers;

impl Providers {
    /// The common case: one prompt to one model.
    pub fn generate_text(
        &self,
        provider: Provider,
        model: &str,
        prompt: &str,
    ) -> Result<providers::TextResponse, TemplateError> {
        self.generate_text_with(&providers::TextRequest {
            provider,
            model: model.into(),
            prompt: prompt.into(),
            system: None,
            temperature: None,
            max_output_tokens: None,
        })
    }
    pub fn generate_text_with(
        &self,
        request: &providers::TextRequest,
    ) -> Result<providers::TextResponse, TemplateError> {
        Ok(providers::generate_text(request)?)
    }
    pub fn generate_image(&self, request: &providers::ImageRequest) -> Result<providers::ImageResponse, TemplateError> {
        Ok(providers::generate_image(request)?)
    }
    pub fn analyze_image_layout(
        &self,
        request: &providers::LayoutRequest,
    ) -> Result<providers::LayoutResponse, TemplateError> {
        Ok(providers::analyze_image_layout(request)?)
    }
    /// Text to speech, stored by the host as a WAV at `request.key` (under the job's prefix).
    pub fn generate_speech(
        &self,
        request: &providers::SpeechRequest,
    ) -> Result<providers::SpeechResponse, TemplateError> {
        Ok(providers::generate_speech(request)?)
    }
    /// A video clip generated by the provider (minutes): the job suspends while the host
    /// submits, polls and stores it, then resumes with the stored clip. Never paid twice.
    pub fn generate_video(&self, request: &providers::VideoRequest) -> Result<providers::VideoResponse, TemplateError> {
        Ok(providers::generate_video(request)?)
    }
}

/// Text to speech from every voice provider, ElevenLabs included.
pub struct Speech;

impl Speech {
    /// Say `request.text` and store the WAV at `request.key` (under the job's prefix). Held,
    /// billed and journaled like every provider call: a replay returns the stored audio.
    pub fn speak(&self, request: &speech::SpeakRequest) -> Result<providers::SpeechResponse, TemplateError> {
        Ok(speech::speak(request)?)
    }
    /// Read a long text aloud (up to 50,000 characters, ElevenLabs): the job suspends while
    /// the host speaks it in parts and joins them into one WAV, then resumes with it.
    pub fn narrate(&self, request: &speech::NarrationRequest) -> Result<providers::SpeechResponse, TemplateError> {
        Ok(speech::narrate(request)?)
    }
}

/// Renders: Remotion compositions and FFmpeg JSON specs.
pub struct Remotion;

impl Remotion {
    pub fn render(&self, request: &remotion::RenderRequest) -> Result<remotion::RenderResult, TemplateError> {
        Ok(remotion::render(request)?)
    }
    pub fn render_spec(
        &self,
        spec: &impl Serialize,
        output_key: Option<&str>,
    ) -> Result<remotion::RenderResult, TemplateError> {
        Ok(remotion::render_spec(&to_json(spec), output_key)?)
    }
}

/// Child jobs and human approvals.
pub struct Jobs;

impl Jobs {
    /// Enqueue a child running `operation` of this template; returns its job id.
    pub fn enqueue_child(&self, operation: &str, payload: &impl Serialize) -> Result<String, TemplateError> {
        Ok(jobs::enqueue_child(&jobs::ChildRequest {
            operation: operation.into(),
            workflow: None,
            payload: to_json(payload),
            provider_hint: None,
        })?)
    }
    pub fn enqueue_child_with(&self, request: &jobs::ChildRequest) -> Result<String, TemplateError> {
        Ok(jobs::enqueue_child(request)?)
    }
    /// Wait for the children (the job suspends until all have ended), results in order.
    pub fn await_children(&self, ids: &[String]) -> Result<Vec<jobs::ChildResult>, TemplateError> {
        Ok(jobs::await_children(ids)?)
    }
    /// Wait for a human's answer (the job suspends until `POST .../resume`).
    pub fn await_human<T: DeserializeOwned>(&self, prompt: &impl Serialize) -> Result<T, TemplateError> {
        let answer = jobs::await_human(&to_json(prompt))?;
        serde_json::from_str(&answer).map_err(|e| TemplateError::new("invalid_human_answer", e.to_string()))
    }
}
