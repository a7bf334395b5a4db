//! `providers`: AI calls through the gateway (key leasing, rate limits, billing), journaled so
//! a replay never pays twice. A call that must wait for a key suspends the job and says why.

use super::{HostState, ProviderAnswer, ProviderCall};
use crate::providers::video::VideoTask;
use crate::render::RenderTask;
use crate::runtime::bindings::providers::{
    Host, ImageRequest, ImageResponse, LayoutRequest, LayoutResponse, ProviderError, SpeechRequest, SpeechResponse,
    TextRequest, TextResponse, VideoRequest, VideoResponse,
};
use crate::runtime::bindings::remotion::RenderError;
use crate::runtime::{HostTrap, RunError, Suspension};

impl Host for HostState {
    async fn generate_text(&mut self, request: TextRequest) -> wasmtime::Result<Result<TextResponse, ProviderError>> {
        self.provider_call("providers.generate-text", ProviderCall::Text(request), |answer| match answer {
            ProviderAnswer::Text(text) => Some(text),
            _ => None,
        })
        .await
    }

    async fn generate_image(
        &mut self,
        request: ImageRequest,
    ) -> wasmtime::Result<Result<ImageResponse, ProviderError>> {
        self.provider_call("providers.generate-image", ProviderCall::Image(request), |answer| match answer {
            ProviderAnswer::Image(image) => Some(image),
            _ => None,
        })
        .await
    }

    async fn analyze_image_layout(
        &mut self,
        request: LayoutRequest,
    ) -> wasmtime::Result<Result<LayoutResponse, ProviderError>> {
        self.provider_call("providers.analyze-image-layout", ProviderCall::Layout(request), |answer| match answer {
            ProviderAnswer::Layout(layout) => Some(layout),
            _ => None,
        })
        .await
    }

    /// The 0.1.0 speech call: the same host path as `speech.speak`.
    async fn generate_speech(
        &mut self,
        request: SpeechRequest,
    ) -> wasmtime::Result<Result<SpeechResponse, ProviderError>> {
        let journaled = serde_json::to_value(&request).unwrap_or_default();
        self.speak_and_store("providers.generate-speech", journaled, request.into()).await
    }

    /// A long-running generation: queued like a render (the job suspends without an instance
    /// while the host submits, polls and downloads), journaled so a replay never pays twice.
    async fn generate_video(
        &mut self,
        request: VideoRequest,
    ) -> wasmtime::Result<Result<VideoResponse, ProviderError>> {
        self.check_cancelled()?;
        let seq = self.journal.next_seq();
        let task = RenderTask::Generation(VideoTask {
            provider: crate::providers::provider_name(request.provider.into()).into(),
            model: request.model.clone(),
            prompt: request.prompt.clone(),
            seconds: request.duration_seconds,
            aspect_ratio: request.aspect_ratio.clone(),
            negative_prompt: request.negative_prompt.clone(),
        });
        let key = request.output_key.clone().unwrap_or_else(|| format!("generations/{}_r{seq}.mp4", self.job.job_id()));
        self.effect("providers.generate-video", request, move |caps, job, _| async move {
            Ok(match caps.renderer.render(&job, seq, &task, Some(&key)).await? {
                Ok(made) => Ok(VideoResponse {
                    generation_id: made.render_id,
                    output_key: made.output_key,
                    output_url: made.output_url,
                    metadata: made.metadata,
                }),
                Err(RenderError::InvalidRequest(m)) => Err(ProviderError::InvalidRequest(m)),
                Err(RenderError::Failed(m)) => Err(ProviderError::Upstream(m)),
                // The only unavailability a generation meets on the platform is the customer's
                // keys (`Failure::NoKey`); elsewhere (the dev runner) it is not offered at all.
                Err(RenderError::Unavailable(m)) if m.starts_with("no usable") => Err(ProviderError::NoValidKey(m)),
                Err(RenderError::Unavailable(m)) => Err(ProviderError::Unsupported(m)),
            })
        })
        .await
    }
}

pub(super) fn other_kind() -> HostTrap {
    HostTrap::Fail(RunError::HostFault { message: "the gateway answered another kind of call".into() })
}

impl HostState {
    async fn provider_call<T>(
        &mut self,
        kind: &str,
        call: ProviderCall,
        unwrap: fn(ProviderAnswer) -> Option<T>,
    ) -> wasmtime::Result<Result<T, ProviderError>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let seq = self.journal.next_seq();
        let request = match &call {
            ProviderCall::Text(r) => serde_json::to_value(r),
            ProviderCall::Image(r) => serde_json::to_value(r),
            ProviderCall::Layout(r) => serde_json::to_value(r),
            ProviderCall::Speech(r) => serde_json::to_value(r),
        }
        .unwrap_or_default();
        let outcome = self
            .effect(kind, request, move |caps, job, _| async move {
                match caps.providers.call(&job, seq, &call).await? {
                    Ok(answer) => unwrap(answer).map(Ok).ok_or_else(other_kind),
                    Err(e) => Ok(Err(e)),
                }
            })
            .await;
        self.note_deferral(&outcome).await;
        outcome
    }

    /// A call deferred for want of a free key says so in the job's events before it suspends.
    pub(super) async fn note_deferral<T>(&mut self, outcome: &wasmtime::Result<T>) {
        if let Err(trap) = &outcome
            && let Some(HostTrap::Suspend(Suspension::Deferred { reason, until_ms })) = trap.downcast_ref::<HostTrap>()
        {
            let metadata = serde_json::json!({ "run_after": until_ms, "reason": "provider_key_unavailable" });
            let event = super::JobEvent {
                level: "warn".into(),
                message: reason.clone(),
                metadata,
                progress: None,
                artifact: None,
            };
            // Best effort: the deferral itself must not turn into a failure.
            let (key, count) = (self.last_event, self.log_events);
            if self.emit(event).await.is_err() {
                (self.last_event, self.log_events) = (key, count);
            }
        }
    }
}
