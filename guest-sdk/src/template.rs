//! The template definition: its operations, their schemas and the workflows behind them.

use crate::bindings::vidfarm::template::types::{self, JobContext, Limits, Manifest, Provider};
use crate::{Context, TemplateError};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

/// A workflow with its input decoded and its output encoded: what `run` dispatches to.
type Workflow = Box<dyn Fn(&Context, &str) -> Result<String, TemplateError>>;

/// A template: what `describe` reports and which workflow each name runs.
pub struct Template {
    id: String,
    version: String,
    description: String,
    /// JSON Schema of the per-customer config, made only when `describe` asks (`{}` accepts
    /// anything): `run` never pays for schema generation.
    config_schema: fn() -> String,
    /// Each operation with the maker of its input schema (run only by `describe`).
    operations: Vec<(types::Operation, fn() -> String)>,
    /// Workflows by name; operations point at them, children may call them directly.
    workflows: Vec<(String, Workflow)>,
}

impl Template {
    pub fn new(id: &str, version: &str, description: &str) -> Self {
        Self {
            id: id.into(),
            version: version.into(),
            description: description.into(),
            config_schema: || "{}".into(),
            operations: Vec::new(),
            workflows: Vec::new(),
        }
    }

    /// Declare the config type: its schema validates `POST /templates/:id/config`, and
    /// workflows read it with [`Context::config`].
    pub fn config<C: JsonSchema>(mut self) -> Self {
        self.config_schema = schema_of::<C>;
        self
    }

    /// Sell an operation; its workflow is registered under the operation's workflow name.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.workflows.push((operation.spec.workflow.clone(), operation.workflow));
        self.operations.push((operation.spec, operation.input_schema));
        self
    }

    /// A workflow that is not an operation of its own (reachable by child jobs by name).
    pub fn workflow<I, O, F>(mut self, name: &str, workflow: F) -> Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(&Context, I) -> Result<O, TemplateError> + 'static,
    {
        self.workflows.push((name.into(), erase(workflow)));
        self
    }

    #[doc(hidden)]
    pub fn manifest(self) -> Manifest {
        Manifest {
            id: self.id,
            version: self.version,
            description: self.description,
            config_schema: (self.config_schema)(),
            operations: self
                .operations
                .into_iter()
                .map(|(spec, schema)| types::Operation { input_schema: schema(), ..spec })
                .collect(),
        }
    }

    #[doc(hidden)]
    pub fn run(self, workflow: &str, job: JobContext, input: &str) -> Result<String, types::TemplateError> {
        let (_, run) = self.workflows.iter().find(|(name, _)| name == workflow).ok_or_else(|| {
            TemplateError::new("unknown_workflow", format!("this template has no workflow `{workflow}`"))
        })?;
        Ok(run(&Context::new(job), input)?)
    }
}

/// One public operation and the workflow behind it.
pub struct Operation {
    spec: types::Operation,
    input_schema: fn() -> String,
    workflow: Workflow,
}

impl Operation {
    /// An operation whose payload is `I` (schema derived) and whose result is `O`. Its workflow
    /// is named after the operation unless [`Operation::workflow_name`] says otherwise.
    pub fn new<I, O, F>(name: &str, description: &str, workflow: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize,
        F: Fn(&Context, I) -> Result<O, TemplateError> + 'static,
    {
        let spec = types::Operation {
            name: name.into(),
            description: description.into(),
            input_schema: String::new(),
            workflow: name.into(),
            provider_hint: None,
            webhook_support: false,
            estimated_cost_usd: None,
            limits: Limits { fuel: None, memory_mib: None, timeout_ms: None, max_children: None, max_retries: None },
        };
        Self { spec, input_schema: schema_of::<I>, workflow: erase(workflow) }
    }

    pub fn workflow_name(mut self, workflow: &str) -> Self {
        self.spec.workflow = workflow.into();
        self
    }

    /// The job notifies the customer's webhooks as it progresses.
    pub fn webhooks(mut self) -> Self {
        self.spec.webhook_support = true;
        self
    }

    pub fn provider_hint(mut self, provider: Provider) -> Self {
        self.spec.provider_hint = Some(provider);
        self
    }

    /// What the host reserves from the customer's balance when a job is created.
    pub fn estimated_cost_usd(mut self, usd: f64) -> Self {
        self.spec.estimated_cost_usd = Some(usd);
        self
    }

    /// Ask for limits other than the host defaults (the host caps them at its maxima).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.spec.limits = limits;
        self
    }
}

fn schema_of<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_else(|_| "{}".into())
}

fn erase<I, O, F>(workflow: F) -> Workflow
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(&Context, I) -> Result<O, TemplateError> + 'static,
{
    Box::new(move |ctx, input| {
        let input: I = serde_json::from_str(input).map_err(|e| TemplateError::new("invalid_input", e.to_string()))?;
        Ok(serde_json::to_string(&workflow(ctx, input)?)?)
    })
}
