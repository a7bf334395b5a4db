//! The error a workflow returns; every capability error converts into it with `?`.

use crate::bindings::vidfarm::template::{
    billing::BillingError, jobs::JobsError, providers::ProviderError, remotion::RenderError, storage::StorageError,
    types,
};

/// A workflow's own failure. The job fails with this `code` and `message`.
#[derive(Debug, Clone)]
pub struct TemplateError {
    /// snake_case and stable, so clients can branch on it.
    pub code: String,
    /// For humans.
    pub message: String,
    /// Optional machine-readable detail.
    pub details: Option<serde_json::Value>,
}

impl TemplateError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for TemplateError {}

impl From<TemplateError> for types::TemplateError {
    fn from(e: TemplateError) -> Self {
        types::TemplateError { code: e.code, message: e.message, details: e.details.map(|d| d.to_string()) }
    }
}

impl From<types::TemplateError> for TemplateError {
    fn from(e: types::TemplateError) -> Self {
        let details = e.details.and_then(|d| serde_json::from_str(&d).ok());
        Self { code: e.code, message: e.message, details }
    }
}

impl From<serde_json::Error> for TemplateError {
    fn from(e: serde_json::Error) -> Self {
        Self::new("invalid_json", e.to_string())
    }
}

impl From<StorageError> for TemplateError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey(m) => Self::new("storage_invalid_key", m),
            StorageError::NotFound(m) => Self::new("storage_not_found", m),
            StorageError::TooLarge(n) => Self::new("storage_too_large", format!("object over the {n}-byte limit")),
            StorageError::Unavailable(m) => Self::new("storage_unavailable", m),
        }
    }
}

impl From<BillingError> for TemplateError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Invalid(m) => Self::new("billing_invalid_event", m),
        }
    }
}

impl From<ProviderError> for TemplateError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::NoValidKey(m) => Self::new("no_valid_provider_key", m),
            ProviderError::InvalidRequest(m) => Self::new("provider_invalid_request", m),
            ProviderError::Upstream(m) => Self::new("provider_failed", m),
            ProviderError::Unsupported(m) => Self::new("provider_unsupported", m),
        }
    }
}

impl From<RenderError> for TemplateError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::InvalidRequest(m) => Self::new("render_invalid_request", m),
            RenderError::Failed(m) => Self::new("render_failed", m),
            RenderError::Unavailable(m) => Self::new("render_unavailable", m),
        }
    }
}

impl From<JobsError> for TemplateError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::LimitReached(m) => Self::new("child_limit_reached", m),
            JobsError::InvalidRequest(m) => Self::new("child_invalid_request", m),
            JobsError::NotAChild(m) => Self::new("not_a_child", m),
        }
    }
}
