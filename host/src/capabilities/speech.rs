//! `speech`: text to speech from every voice provider, ElevenLabs included. The 0.1.0
//! `providers.generate-speech` comes here too: one path leases, holds, bills, stores and
//! journals the audio whichever function asked for it.

use super::providers::other_kind;
use super::{HostState, JobEvent, ProviderAnswer, ProviderCall, SpeechCall};
use crate::providers::narration::NarrationTask;
use crate::render::RenderTask;
use crate::runtime::bindings::providers::{ProviderError, SpeechResponse};
use crate::runtime::bindings::remotion::RenderError;
use crate::runtime::bindings::speech::{Host, NarrationRequest, SpeakRequest};
use crate::storage::keys;

impl Host for HostState {
    async fn speak(&mut self, request: SpeakRequest) -> wasmtime::Result<Result<SpeechResponse, ProviderError>> {
        let journaled = serde_json::to_value(&request).unwrap_or_default();
        self.speak_and_store("speech.speak", journaled, request.into()).await
    }

    /// A long-running generation: queued like a render (the job suspends without an instance
    /// while the host speaks the parts and joins them), journaled so a replay never pays twice.
    async fn narrate(&mut self, request: NarrationRequest) -> wasmtime::Result<Result<SpeechResponse, ProviderError>> {
        self.check_cancelled()?;
        let seq = self.journal.next_seq();
        let task = RenderTask::Narration(NarrationTask {
            provider: crate::providers::provider_name(request.provider.into()).into(),
            model: request.model.clone(),
            text: request.text.clone(),
            voice: request.voice.clone(),
            voice_settings: request.voice_settings.clone(),
            seed: request.seed,
        });
        let key = request.key.clone();
        self.effect("speech.narrate", request, move |caps, job, _| async move {
            Ok(match caps.renderer.render(&job, seq, &task, Some(&key)).await? {
                Ok(made) => {
                    let metadata: serde_json::Value = serde_json::from_str(&made.metadata).unwrap_or_default();
                    Ok(SpeechResponse {
                        key: made.output_key,
                        url: made.output_url,
                        size: metadata["size_bytes"].as_u64().unwrap_or(0),
                        content_type: "audio/wav".into(),
                        duration_seconds: metadata["duration_seconds"].as_f64().unwrap_or(0.0),
                    })
                }
                Err(RenderError::InvalidRequest(m)) => Err(ProviderError::InvalidRequest(m)),
                Err(RenderError::Failed(m)) => Err(ProviderError::Upstream(m)),
                Err(RenderError::Unavailable(m)) if m.starts_with("no usable") => Err(ProviderError::NoValidKey(m)),
                Err(RenderError::Unavailable(m)) => Err(ProviderError::Unsupported(m)),
            })
        })
        .await
    }
}

impl HostState {
    /// The call and the storing of its audio are one effect: a replay returns the stored
    /// object and neither speaks nor stores again.
    pub(super) async fn speak_and_store(
        &mut self,
        effect: &'static str,
        journaled: serde_json::Value,
        request: SpeechCall,
    ) -> wasmtime::Result<Result<SpeechResponse, ProviderError>> {
        self.check_cancelled()?;
        let full_key = match keys::resolve(&self.job.artifact_prefix, &request.key) {
            Ok(full) => full,
            Err(reason) => return Ok(Err(ProviderError::InvalidRequest(format!("key: {reason}")))),
        };
        let seq = self.journal.next_seq();
        let key = request.key.clone();
        let call = ProviderCall::Speech(request);
        let outcome = self
            .effect(effect, journaled, move |caps, job, _| async move {
                // The audio's size is known only once it is paid for: a customer whose storage
                // is full pays for no speech; one with room stores it even if it overshoots.
                caps.billing.check_storage_room(&job).await?;
                let audio = match caps.providers.call(&job, seq, &call).await? {
                    Ok(ProviderAnswer::Speech(audio)) => audio,
                    Ok(_) => return Err(other_kind()),
                    Err(e) => return Ok(Err(e)),
                };
                // Stored, then counted (forced: it is paid for) under its own ledger key (the
                // call's capture already has the effect's): a store that fails counts nothing.
                let size = match caps.storage.put(&full_key, audio.wav, "audio/wav").await {
                    Ok(size) => size,
                    Err(e) => return Ok(Err(ProviderError::Upstream(format!("storing the audio: {e}")))),
                };
                let effect_key = format!("{}:{seq}:audio", job.job_id());
                caps.billing.record_storage_write(&job, &effect_key, &full_key, size, true).await?;
                Ok(Ok(SpeechResponse {
                    url: caps.storage.public_url(&full_key).await,
                    key,
                    size,
                    content_type: "audio/wav".into(),
                    duration_seconds: audio.duration_seconds,
                }))
            })
            .await;
        self.note_deferral(&outcome).await;
        let result = outcome?;
        if let Ok(spoken) = &result {
            self.emit(JobEvent {
                level: "info".into(),
                message: format!("spoke {} ({:.1} s)", spoken.key, spoken.duration_seconds),
                metadata: serde_json::json!({ "duration_seconds": spoken.duration_seconds }),
                progress: None,
                artifact: Some(serde_json::json!({
                    "key": spoken.key, "url": spoken.url, "size": spoken.size,
                    "content_type": spoken.content_type, "kind": "audio",
                })),
            })
            .await?;
        }
        Ok(result)
    }
}
