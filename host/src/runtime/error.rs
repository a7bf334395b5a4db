//! Why a run did not succeed: every limit hit and failure has its own stable code.

use serde::Serialize;

/// The reason a template run failed. `code()` is what clients and tests see.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The workflow returned its own error.
    #[error("{code}: {message}")]
    Template { code: String, message: String, details: Option<serde_json::Value> },
    /// The run used its whole fuel budget (a CPU-bound loop, or just too much work).
    #[error("the run used its whole fuel budget of {budget} units")]
    OutOfFuel { budget: u64 },
    /// The guest tried to grow its memory past the cap.
    #[error("the run tried to use more than its memory cap of {limit_bytes} bytes")]
    MemoryLimit { limit_bytes: u64 },
    /// The run took longer than its wall-clock deadline.
    #[error("the run exceeded its deadline of {timeout_ms} ms")]
    DeadlineExceeded { timeout_ms: u64 },
    /// The guest panicked (Rust) or threw (JS/Python); the message is the guest's.
    #[error("the template panicked: {message}")]
    GuestPanic { message: String },
    /// The run emitted more log events than a job may keep.
    #[error("the run emitted more than {limit} log events")]
    LogLimitExceeded { limit: u64 },
    /// The job was cancelled while it ran.
    #[error("the job was cancelled")]
    Cancelled,
    /// A replay asked for a different effect than the journal recorded at that position.
    #[error("the workflow is not deterministic: {message}")]
    NonDeterministic { message: String },
    /// The next charge would cross the customer's billing limit.
    #[error("the customer's billing limit is reached: {message}")]
    BillingLimitReached { message: String },
    /// The next stored object would take the customer past their storage quota.
    #[error("the customer's storage quota is reached: {message}")]
    StorageQuotaExceeded { message: String },
    /// The guest trapped for a reason of its own (e.g. an out-of-bounds access).
    #[error("the template trapped: {message}")]
    GuestTrap { message: String },
    /// The component broke the contract (e.g. returned invalid JSON).
    #[error("the template broke the host contract: {message}")]
    ContractViolation { message: String },
    /// The run's result is larger than a job may store (it would be copied into every read
    /// and webhook).
    #[error(
        "the result is {bytes} bytes; a job's result may be at most {limit} bytes (store large output with storage)"
    )]
    ResultTooLarge { bytes: usize, limit: usize },
    /// Something in the host failed (storage down, database error): retryable.
    #[error("a host fault interrupted the run: {message}")]
    HostFault { message: String },
}

impl RunError {
    /// The stable snake_case code of this error.
    pub fn code(&self) -> &str {
        match self {
            Self::Template { code, .. } => code,
            Self::OutOfFuel { .. } => "out_of_fuel",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::GuestPanic { .. } => "guest_panic",
            Self::LogLimitExceeded { .. } => "log_limit_exceeded",
            Self::Cancelled => "cancelled",
            Self::NonDeterministic { .. } => "non_deterministic",
            Self::BillingLimitReached { .. } => "billing_limit_reached",
            Self::StorageQuotaExceeded { .. } => "storage_quota_exceeded",
            Self::GuestTrap { .. } => "guest_trap",
            Self::ContractViolation { .. } => "contract_violation",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::HostFault { .. } => "host_fault",
        }
    }

    /// A retry may succeed: only host faults. A template's own error or a limit hit would
    /// fail again the same way, so the job fails at once.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::HostFault { .. })
    }

    pub fn message(&self) -> String {
        match self {
            Self::Template { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::Template { details, .. } => details.clone(),
            _ => None,
        }
    }

    /// The `{code, message, details?}` object stored on the job and shown to clients.
    pub fn to_json(&self) -> serde_json::Value {
        ErrorBody { code: self.code(), message: self.message(), details: self.details() }.to_json()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
}

impl ErrorBody<'_> {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// A host function's reason to end the run at once; carried inside the trap and recovered
/// by the runner with `downcast_ref`, so the job fails with a precise code.
#[derive(Debug, thiserror::Error)]
pub enum HostTrap {
    #[error("{0}")]
    Fail(RunError),
    /// Not a failure: the job waits (children or a human) and will replay later.
    #[error("the job suspends: {0:?}")]
    Suspend(Suspension),
}

/// Why a run stopped without an outcome; the engine re-queues the job when this resolves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Suspension {
    /// Waiting for these child jobs to end.
    Children { ids: Vec<String> },
    /// Waiting for `POST .../resume`; the prompt is shown on the job.
    Human { prompt: serde_json::Value },
    /// Waiting for a render the host runs outside the instance.
    Render { render_id: String },
    /// A provider key or other resource is cooling down; retry at this unix time (ms).
    Deferred { until_ms: i64, reason: String },
}

/// Build the trap that fails the run with `error`.
pub fn fail(error: RunError) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap::Fail(error))
}

/// Build the trap that suspends the run.
pub fn suspend(suspension: Suspension) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap::Suspend(suspension))
}
