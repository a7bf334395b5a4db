//! The renderer for hosts without a render backend.

use super::*;
use crate::runtime::bindings::remotion as wit_remotion;

/// The renderer of a host with no render backend configured: renders fail with
/// `unavailable`, honestly (the Remotion and FFmpeg backends are still to come).
pub struct NoRenderer;

#[async_trait]
impl Renderer for NoRenderer {
    async fn render(
        &self,
        _: &JobScope,
        _: &wit_remotion::RenderRequest,
    ) -> BackendResult<Result<wit_remotion::RenderResult, wit_remotion::RenderError>> {
        Ok(Err(wit_remotion::RenderError::Unavailable("no Remotion renderer is configured on this host".into())))
    }
    async fn render_spec(
        &self,
        _: &JobScope,
        _: &str,
        _: Option<&str>,
    ) -> BackendResult<Result<wit_remotion::RenderResult, wit_remotion::RenderError>> {
        Ok(Err(wit_remotion::RenderError::Unavailable("no FFmpeg renderer is configured on this host".into())))
    }
}
