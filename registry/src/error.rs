//! Why an artifact was refused or a registry operation failed; each names its reason.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the artifact is unsigned: {0}")]
    Unsigned(String),
    #[error("the artifact was tampered with: {0}")]
    Tampered(String),
    #[error("the artifact is signed by key `{0}`, which this host does not trust")]
    UntrustedKey(String),
    #[error("the signature does not verify with key `{0}`")]
    BadSignature(String),
    #[error("the artifact is built for WIT world `{found}`; this host runs `{expected}`")]
    IncompatibleWorld { found: String, expected: String },
    #[error("the component's describe disagrees with its signed manifest: {0}")]
    DescribeMismatch(String),
    #[error("{template_id}@{version} already exists with other bytes (digest {existing})")]
    VersionExists { template_id: String, version: String, existing: String },
    #[error("no {0} in the registry")]
    NotFound(String),
    #[error("invalid {what}: {problem}")]
    Invalid { what: &'static str, problem: String },
    #[error("registry storage: {0}")]
    Io(#[from] std::io::Error),
}
