//! Loading a component: compile (or hit the cache) off the async threads, link it once into
//! an `InstancePre`, ask it to `describe` itself, and check the manifest it returns.

use super::bindings::{TemplatePre, types::Manifest};
use super::cache::CacheOutcome;
use super::run::{RunOutcome, RunRequest};
use super::{Limits, Runtime};
use crate::capabilities::Capabilities;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Compile(#[from] super::CacheError),
    #[error("the component does not fit the vidfarm:template world: {0}")]
    Link(String),
    #[error("`describe` failed: {0}")]
    Describe(String),
    #[error("the manifest is invalid: {0}")]
    Manifest(String),
}

/// A template ready to run: linked once, instantiated per run.
pub struct LoadedTemplate {
    /// What the template said about itself, checked.
    pub manifest: Manifest,
    /// blake3 of the component bytes: the identity of this build.
    pub digest: String,
    /// Whether the compiled code came from the cache.
    pub cache_outcome: CacheOutcome,
    pub(crate) pre: TemplatePre<super::HostState>,
    /// The template's own Remotion compositions (set by the catalog once the registry's bundle
    /// is verified and unpacked): its renders use this bundle and no other.
    pub bundle: Option<crate::render::bundles::TemplateBundle>,
    /// Compiled input schemas by operation name, so requests are validated without recompiling.
    input_validators: HashMap<String, jsonschema::Validator>,
    config_validator: jsonschema::Validator,
    /// Keeps this build's compiled file in the cache while it is loaded (see `cache`).
    _in_use: Arc<super::cache::InUse>,
}

impl LoadedTemplate {
    pub fn operation(&self, name: &str) -> Option<&super::bindings::types::Operation> {
        self.manifest.operations.iter().find(|op| op.name == name)
    }

    /// The payload's schema violations for `operation` (`None` if there is no such operation).
    pub fn validate_input(&self, operation: &str, payload: &serde_json::Value) -> Option<Vec<SchemaViolation>> {
        self.input_validators.get(operation).map(|v| violations(v, payload))
    }

    /// The config's schema violations.
    pub fn validate_config(&self, config: &serde_json::Value) -> Vec<SchemaViolation> {
        violations(&self.config_validator, config)
    }
}

/// One way a JSON value fails its schema: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SchemaViolation {
    pub field: String,
    pub problem: String,
}

fn violations(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<SchemaViolation> {
    validator
        .iter_errors(value)
        .map(|e| SchemaViolation { field: e.instance_path().to_string(), problem: e.to_string() })
        .collect()
}

impl Runtime {
    /// Compile (or load from cache), link and describe a component.
    pub async fn load(&self, bytes: Arc<[u8]>) -> Result<LoadedTemplate, LoadError> {
        let digest = blake3::hash(&bytes).to_hex().to_string();
        // Held from the start: a load running beside this one must not evict the file it writes.
        let _in_use = self.cache.hold(&digest);
        let (engine, cache, key) = (self.engine.clone(), self.cache.clone(), digest.clone());
        let (component, cache_outcome) = tokio::task::spawn_blocking(move || cache.load(&engine, &key, &bytes))
            .await
            .map_err(|e| LoadError::Describe(e.to_string()))??;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = TemplatePre::new(instance_pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let manifest = self.describe(&pre).await?;
        let (input_validators, config_validator) = check_manifest(&manifest)?;
        Ok(LoadedTemplate {
            manifest,
            digest,
            cache_outcome,
            pre,
            bundle: None,
            input_validators,
            config_validator,
            _in_use,
        })
    }

    async fn describe(&self, pre: &TemplatePre<super::HostState>) -> Result<Manifest, LoadError> {
        let limits = Limits { fuel: 1_000_000_000, timeout_ms: 10_000, ..self.config.defaults };
        let request = RunRequest::describe(limits);
        let report = self.execute(pre, request, Arc::new(Capabilities::inert()), Call::Describe, None).await;
        match report.outcome {
            RunOutcome::Described(manifest) => Ok(*manifest),
            RunOutcome::Failed(e) => Err(LoadError::Describe(e.to_string())),
            other => Err(LoadError::Describe(format!("unexpected outcome {other:?}"))),
        }
    }
}

pub(crate) use super::run::Call;

type Validators = (HashMap<String, jsonschema::Validator>, jsonschema::Validator);

fn check_manifest(manifest: &Manifest) -> Result<Validators, LoadError> {
    let bad = |m: String| LoadError::Manifest(m);
    if !is_slug(&manifest.id) {
        return Err(bad(format!("id `{}` must be 1-64 chars of a-z, 0-9 and -", manifest.id)));
    }
    if !is_semver(&manifest.version) {
        return Err(bad(format!("version `{}` is not semver (x.y.z)", manifest.version)));
    }
    let config_validator = compile_schema(&manifest.config_schema).map_err(|e| bad(format!("config schema: {e}")))?;
    if manifest.operations.is_empty() {
        return Err(bad("the template has no operations".into()));
    }
    let mut validators = HashMap::new();
    for op in &manifest.operations {
        if !is_slug(&op.name) {
            return Err(bad(format!("operation name `{}` must be 1-64 chars of a-z, 0-9 and -", op.name)));
        }
        if op.workflow.is_empty() {
            return Err(bad(format!("operation `{}` has no workflow", op.name)));
        }
        if op.estimated_cost_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(bad(format!("operation `{}` has a negative or non-finite cost estimate", op.name)));
        }
        let validator =
            compile_schema(&op.input_schema).map_err(|e| bad(format!("input schema of `{}`: {e}", op.name)))?;
        if validators.insert(op.name.clone(), validator).is_some() {
            return Err(bad(format!("operation `{}` is declared twice", op.name)));
        }
    }
    Ok((validators, config_validator))
}

fn compile_schema(schema: &str) -> Result<jsonschema::Validator, String> {
    let value: serde_json::Value = serde_json::from_str(schema).map_err(|e| format!("not JSON: {e}"))?;
    jsonschema::validator_for(&value).map_err(|e| e.to_string())
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}
