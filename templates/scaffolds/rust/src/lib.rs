//! `__TEMPLATE_NAME__`: a Vidfarm template in Rust (made by `vidfarm template new`).
//!
//! One operation to start from: a model drafts a short video script, which is stored. The
//! guest SDK's docs (`guest-sdk/src/lib.rs`) list everything the context can do.

use vidfarm_guest::prelude::*;

/// The payload of `draft`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Draft {
    /// What the video is about.
    #[schemars(length(min = 1, max = 500))]
    topic: String,
}

#[derive(Serialize)]
struct Drafted {
    key: String,
    script: String,
}

fn draft(ctx: &Context, input: Draft) -> Result<Drafted, TemplateError> {
    ctx.logger.progress(0.1, "drafting");
    let prompt = format!("Write a 30-second video script about: {}", input.topic);
    let answer = ctx.providers.generate_text(Provider::Openai, "gpt-4o-mini", &prompt)?;
    let stored = ctx.storage.put_text("script.txt", &answer.text)?;
    ctx.logger.progress(1.0, "script stored");
    Ok(Drafted { key: stored.key, script: answer.text })
}

fn template() -> Template {
    Template::new("__TEMPLATE_NAME__", "0.1.0", "Drafts short video scripts with the customer's AI provider.")
        .operation(Operation::new("draft", "Draft a 30-second video script about a topic and store it.", draft))
}

vidfarm_guest::export_template!(template);
