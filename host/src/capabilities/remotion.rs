//! `remotion`: Remotion and FFmpeg renders, journaled so a replay never renders twice.

use super::HostState;
use crate::runtime::bindings::remotion::{Host, RenderError, RenderRequest, RenderResult};

impl Host for HostState {
    async fn render(&mut self, request: RenderRequest) -> wasmtime::Result<Result<RenderResult, RenderError>> {
        self.effect("remotion.render", request, |caps, job, request| async move {
            caps.renderer.render(&job, &request).await
        })
        .await
    }

    async fn render_spec(
        &mut self,
        spec: String,
        output_key: Option<String>,
    ) -> wasmtime::Result<Result<RenderResult, RenderError>> {
        let request = (spec, output_key);
        self.effect("remotion.render-spec", request, |caps, job, request| async move {
            caps.renderer.render_spec(&job, &request.0, request.1.as_deref()).await
        })
        .await
    }
}
