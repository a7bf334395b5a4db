//! `remotion`: Remotion and FFmpeg renders, journaled so a replay never renders twice. The
//! renderer may suspend the job while the render runs (see `render`).

use super::HostState;
use crate::render::RenderTask;
use crate::runtime::bindings::remotion::{Host, RenderError, RenderRequest, RenderResult};

impl Host for HostState {
    async fn render(&mut self, request: RenderRequest) -> wasmtime::Result<Result<RenderResult, RenderError>> {
        let Ok(input_props) = serde_json::from_str(&request.input_props) else {
            return Ok(Err(RenderError::InvalidRequest("input-props: not JSON".into())));
        };
        let task = RenderTask::Remotion {
            composition_id: request.composition_id.clone(),
            serve_url: request.serve_url.clone(),
            entry_point: request.entry_point.clone(),
            input_props,
            bundle: self.job.bundle.clone(),
        };
        let output_key = request.output_key.clone();
        self.submit("remotion.render", request, task, output_key).await
    }

    async fn render_spec(
        &mut self,
        spec: String,
        output_key: Option<String>,
    ) -> wasmtime::Result<Result<RenderResult, RenderError>> {
        let Ok(parsed) = serde_json::from_str(&spec) else {
            return Ok(Err(RenderError::InvalidRequest("spec: not JSON".into())));
        };
        let task = RenderTask::Spec { spec: parsed };
        self.submit("remotion.render-spec", (spec, output_key.clone()), task, output_key).await
    }
}

impl HostState {
    async fn submit<R: serde::Serialize>(
        &mut self,
        kind: &str,
        request: R,
        task: RenderTask,
        output_key: Option<String>,
    ) -> wasmtime::Result<Result<RenderResult, RenderError>> {
        let seq = self.journal.next_seq();
        self.effect(kind, request, move |caps, job, _request| async move {
            caps.renderer.render(&job, seq, &task, output_key.as_deref()).await
        })
        .await
    }
}
