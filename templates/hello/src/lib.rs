//! `hello`: the smallest useful template. It greets people — alone, in a fan-out of child
//! jobs, or after a human approves — and exercises logging, progress, storage and jobs.

use vidfarm_guest::prelude::*;

/// The version and default salutation can be set at build time, so tests get a distinct
/// "next version" of this template to hot-swap to.
const VERSION: &str = match option_env!("VIDFARM_HELLO_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
const DEFAULT_SALUTATION: &str = match option_env!("VIDFARM_HELLO_SALUTATION") {
    Some(s) => s,
    None => "Hello",
};

/// Per-customer settings (`POST /templates/hello/config`).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct HelloConfig {
    /// The word greetings start with.
    #[serde(default)]
    #[schemars(length(min = 1, max = 40))]
    salutation: Option<String>,
}

impl HelloConfig {
    fn greet(&self, name: &str) -> String {
        format!("{}, {name}!", self.salutation.as_deref().unwrap_or(DEFAULT_SALUTATION))
    }
}

/// The payload of `greet`.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Greet {
    /// Who to greet.
    #[schemars(length(min = 1, max = 200))]
    name: String,
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    greeting: String,
}

/// The payload of `greet-many`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GreetMany {
    /// Everyone to greet; one child job each.
    #[schemars(length(min = 1, max = 50))]
    names: Vec<String>,
}

#[derive(Serialize)]
struct Greetings {
    greetings: Vec<String>,
}

/// The answer `greet-after-approval` waits for (`POST .../jobs/:id/resume`).
#[derive(Deserialize)]
struct Approval {
    approved: bool,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Serialize)]
struct Decision {
    approved: bool,
    greeting: Option<String>,
    note: Option<String>,
}

fn greet(ctx: &Context, input: Greet) -> Result<Greeting, TemplateError> {
    ctx.logger.info("greeting someone", json!({ "name": input.name }));
    let greeting = ctx.config::<HelloConfig>()?.greet(&input.name);
    ctx.logger.progress(0.5, "greeting composed");
    let stored = ctx.storage.put_text("greeting.txt", &greeting)?;
    ctx.logger.info("greeting stored", json!({ "key": stored.key, "size": stored.size }));
    ctx.logger.progress(1.0, "done");
    Ok(Greeting { greeting })
}

fn greet_many(ctx: &Context, input: GreetMany) -> Result<Greetings, TemplateError> {
    let children = input
        .names
        .iter()
        .map(|name| ctx.jobs.enqueue_child("greet", &Greet { name: name.clone() }))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.logger.info("children enqueued", json!({ "children": children }));
    let mut greetings = Vec::with_capacity(children.len());
    for child in ctx.jobs.await_children(&children)? {
        match child.outcome {
            ChildOutcome::Succeeded(output) => greetings.push(serde_json::from_str::<Greeting>(&output)?.greeting),
            ChildOutcome::Failed(error) => return Err(error.into()),
            ChildOutcome::Cancelled => {
                return Err(TemplateError::new("child_cancelled", format!("child {} was cancelled", child.job_id)));
            }
        }
    }
    ctx.logger.progress(1.0, "all greeted");
    Ok(Greetings { greetings })
}

fn greet_after_approval(ctx: &Context, input: Greet) -> Result<Decision, TemplateError> {
    let approval: Approval = ctx.jobs.await_human(&json!({
        "question": format!("May we greet {}?", input.name),
        "answer": { "approved": "boolean", "note": "string (optional)" },
    }))?;
    let greeting = approval.approved.then(|| ctx.config::<HelloConfig>().unwrap_or_default().greet(&input.name));
    ctx.logger.info("human answered", json!({ "approved": approval.approved }));
    Ok(Decision { approved: approval.approved, greeting, note: approval.note })
}

fn template() -> Template {
    Template::new("hello", VERSION, "Greets people: alone, in a fan-out, or after approval.")
        .config::<HelloConfig>()
        .operation(Operation::new("greet", "Greet one person and store the greeting.", greet).webhooks())
        .operation(Operation::new("greet-many", "Greet everyone, one child job per name.", greet_many).webhooks())
        .operation(
            Operation::new("greet-after-approval", "Wait for a human to approve, then greet.", greet_after_approval)
                .webhooks(),
        )
}

vidfarm_guest::export_template!(template);
