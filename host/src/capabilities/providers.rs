//! `providers`: AI calls through the gateway (key leasing, rate limits, billing), journaled so
//! a replay never pays twice. A call that must wait for a key suspends the job and says why.

use super::{HostState, ProviderAnswer, ProviderCall};
use crate::runtime::bindings::providers::{
    Host, ImageRequest, ImageResponse, LayoutRequest, LayoutResponse, ProviderError, TextRequest, TextResponse,
};
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
        }
        .unwrap_or_default();
        let outcome = self
            .effect(kind, request, move |caps, job, _| async move {
                match caps.providers.call(&job, seq, &call).await? {
                    Ok(answer) => unwrap(answer).map(Ok).ok_or_else(|| {
                        HostTrap::Fail(RunError::HostFault {
                            message: "the gateway answered another kind of call".into(),
                        })
                    }),
                    Err(e) => Ok(Err(e)),
                }
            })
            .await;
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
        outcome
    }
}
