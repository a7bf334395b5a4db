//! The renderer for hosts without a render backend.

use super::*;
use crate::runtime::bindings::remotion as wit_remotion;

/// The renderer of a host (or a test) with no render backend: renders fail with
/// `unavailable`, honestly.
pub struct NoRenderer;

#[async_trait]
impl Renderer for NoRenderer {
    async fn render(
        &self,
        _: &JobScope,
        _: u32,
        _: &crate::render::RenderTask,
        _: Option<&str>,
    ) -> BackendResult<Result<wit_remotion::RenderResult, wit_remotion::RenderError>> {
        Ok(Err(wit_remotion::RenderError::Unavailable("no renderer is configured here".into())))
    }
}
