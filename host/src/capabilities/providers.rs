//! `providers`: AI calls through the gateway (key leasing, rate limits), journaled so a
//! replay never pays twice.

use super::HostState;
use crate::runtime::bindings::providers::{
    Host, ImageRequest, ImageResponse, LayoutRequest, LayoutResponse, ProviderError, TextRequest, TextResponse,
};

impl Host for HostState {
    async fn generate_text(&mut self, request: TextRequest) -> wasmtime::Result<Result<TextResponse, ProviderError>> {
        self.effect("providers.generate-text", request, |caps, job, request| async move {
            caps.providers.generate_text(&job, &request).await
        })
        .await
    }

    async fn generate_image(
        &mut self,
        request: ImageRequest,
    ) -> wasmtime::Result<Result<ImageResponse, ProviderError>> {
        self.effect("providers.generate-image", request, |caps, job, request| async move {
            caps.providers.generate_image(&job, &request).await
        })
        .await
    }

    async fn analyze_image_layout(
        &mut self,
        request: LayoutRequest,
    ) -> wasmtime::Result<Result<LayoutResponse, ProviderError>> {
        self.effect("providers.analyze-image-layout", request, |caps, job, request| async move {
            caps.providers.analyze_image_layout(&job, &request).await
        })
        .await
    }
}
