//! `hello`: the smallest useful template. It greets people — alone, in a fan-out of child
//! jobs, or after a human approves — and exercises logging, progress, storage and jobs; `ask`,
//! `draw` and `place-text` call each AI provider capability once.

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

/// The payload of `ask`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Ask {
    provider: ProviderName,
    /// The provider's model name, e.g. `gpt-4o-mini` or `gemini-2.5-flash`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 20000))]
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 32000))]
    max_output_tokens: Option<u32>,
}

#[derive(Serialize)]
struct Answer {
    text: String,
    model: String,
    input_tokens: u32,
    output_tokens: u32,
}

/// The payload of `draw`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Draw {
    provider: ProviderName,
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 4000))]
    prompt: String,
    /// `WIDTHxHEIGHT`, e.g. `1024x1024`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]{2,4}x[0-9]{2,4}$"))]
    size: Option<String>,
}

#[derive(Serialize)]
struct Drawing {
    key: String,
    url: Option<String>,
    size: u64,
    content_type: String,
    revised_prompt: Option<String>,
}

/// The payload of `speak`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Speak {
    provider: ProviderName,
    /// e.g. `tts-1`, `gpt-4o-mini-tts`, `gemini-2.5-flash-preview-tts`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 4096))]
    text: String,
    /// e.g. `alloy` (OpenAI), `Kore` (Gemini).
    #[schemars(length(min = 1, max = 100))]
    voice: String,
    #[serde(default)]
    #[schemars(length(max = 500))]
    instructions: Option<String>,
    /// Wait for a human's approval after speaking (the run then resumes by replaying the
    /// speech from the journal).
    #[serde(default)]
    then_wait_for_approval: bool,
}

/// The payload of `voice`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Voice {
    provider: VoiceProviderName,
    /// e.g. `eleven_multilingual_v2`, `eleven_flash_v2_5`, `gpt-4o-mini-tts`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 5000))]
    text: String,
    /// A voice name, or an ElevenLabs voice id (`JBFqnCBsd6RMkjVDRZzb`).
    #[schemars(length(min = 1, max = 100))]
    voice: String,
    #[serde(default)]
    #[schemars(length(max = 500))]
    instructions: Option<String>,
    /// ElevenLabs' `voice_settings` (`stability`, `similarity_boost`, `style`, `speed`, …).
    #[serde(default)]
    voice_settings: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    seed: Option<u32>,
}

/// The payload of `narrate`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Narrate {
    provider: VoiceProviderName,
    /// e.g. `eleven_multilingual_v2`, `eleven_flash_v2_5`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 50000))]
    text: String,
    /// An ElevenLabs voice id (`JBFqnCBsd6RMkjVDRZzb`).
    #[schemars(length(min = 1, max = 100))]
    voice: String,
    #[serde(default)]
    voice_settings: Option<serde_json::Map<String, Value>>,
}

/// The payload of `film`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Film {
    provider: ProviderName,
    /// e.g. `veo-3.1-generate-preview`, `veo-3.1-fast-generate-preview`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    #[schemars(length(min = 1, max = 4000))]
    prompt: String,
    /// The clip's length (Veo 3.1: 4, 6 or 8).
    #[schemars(range(min = 1, max = 60))]
    seconds: u32,
    /// `16:9` (default) or `9:16`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^(16:9|9:16)$"))]
    aspect_ratio: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 1000))]
    negative_prompt: Option<String>,
}

#[derive(Serialize)]
struct Filmed {
    key: String,
    url: Option<String>,
    metadata: Value,
}

/// The payload of `place-text`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PlaceText {
    provider: ProviderName,
    #[schemars(length(min = 1, max = 200))]
    model: String,
    /// The frame: an https URL or a `data:image/...;base64,` URL.
    #[schemars(length(min = 1, max = 14000000))]
    image_url: String,
    #[schemars(length(min = 1, max = 500))]
    text: String,
}

#[derive(Serialize)]
struct Placement {
    zone: String,
    align: String,
    max_width_percent: f32,
    justification: String,
}

fn ask(ctx: &Context, input: Ask) -> Result<Answer, TemplateError> {
    let answer = ctx.providers.generate_text_with(&TextRequest {
        provider: input.provider.into(),
        model: input.model,
        prompt: input.prompt,
        system: input.system,
        temperature: None,
        max_output_tokens: input.max_output_tokens,
    })?;
    ctx.logger.info("answered", json!({ "input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens }));
    Ok(Answer {
        text: answer.text,
        model: answer.model,
        input_tokens: answer.input_tokens,
        output_tokens: answer.output_tokens,
    })
}

#[derive(Serialize)]
struct Spoken {
    key: String,
    url: Option<String>,
    size: u64,
    content_type: String,
    duration_seconds: f64,
}

impl From<SpeechResponse> for Spoken {
    fn from(spoken: SpeechResponse) -> Self {
        Self {
            key: spoken.key,
            url: spoken.url,
            size: spoken.size,
            content_type: spoken.content_type,
            duration_seconds: spoken.duration_seconds,
        }
    }
}

fn speak(ctx: &Context, input: Speak) -> Result<Spoken, TemplateError> {
    let spoken = ctx.providers.generate_speech(&SpeechRequest {
        provider: input.provider.into(),
        model: input.model,
        text: input.text,
        voice: input.voice,
        key: "speech/spoken.wav".into(),
        instructions: input.instructions,
    })?;
    if input.then_wait_for_approval {
        let _: Value = ctx.jobs.await_human(&json!({ "question": "Keep this recording?" }))?;
    }
    ctx.logger.progress(1.0, "spoken");
    Ok(spoken.into())
}

fn voice(ctx: &Context, input: Voice) -> Result<Spoken, TemplateError> {
    let spoken = ctx.speech.speak(&SpeakRequest {
        provider: input.provider.into(),
        model: input.model,
        text: input.text,
        voice: input.voice,
        key: "speech/voice.wav".into(),
        instructions: input.instructions,
        voice_settings: input.voice_settings.map(|s| Value::Object(s).to_string()),
        seed: input.seed,
    })?;
    ctx.logger.progress(1.0, "spoken");
    Ok(spoken.into())
}

fn narrate(ctx: &Context, input: Narrate) -> Result<Spoken, TemplateError> {
    ctx.logger.progress(0.05, "narrating");
    let spoken = ctx.speech.narrate(&NarrationRequest {
        provider: input.provider.into(),
        model: input.model,
        text: input.text,
        voice: input.voice,
        key: "speech/narration.wav".into(),
        voice_settings: input.voice_settings.map(|s| Value::Object(s).to_string()),
        seed: None,
    })?;
    ctx.logger.progress(1.0, "narrated");
    Ok(spoken.into())
}

fn film(ctx: &Context, input: Film) -> Result<Filmed, TemplateError> {
    ctx.logger.progress(0.05, "asking the provider for the clip");
    let clip = ctx.providers.generate_video(&VideoRequest {
        provider: input.provider.into(),
        model: input.model,
        prompt: input.prompt,
        duration_seconds: input.seconds,
        aspect_ratio: input.aspect_ratio.unwrap_or_else(|| "16:9".into()),
        negative_prompt: input.negative_prompt,
        output_key: Some("clips/clip.mp4".into()),
    })?;
    ctx.logger.progress(1.0, "clip stored");
    Ok(Filmed { key: clip.output_key, url: clip.output_url, metadata: serde_json::from_str(&clip.metadata)? })
}

fn draw(ctx: &Context, input: Draw) -> Result<Drawing, TemplateError> {
    let image = ctx.providers.generate_image(&ImageRequest {
        provider: input.provider.into(),
        model: input.model,
        prompt: input.prompt,
        size: input.size,
    })?;
    let extension = match image.content_type.as_str() {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    };
    let options = PutOptions {
        content_type: image.content_type.clone(),
        kind: Some("image".into()),
        metadata: json!({ "prompt_chars": image.revised_prompt.as_ref().map_or(0, String::len) }).to_string(),
    };
    let stored = ctx.storage.put_bytes(&format!("images/drawing.{extension}"), &image.bytes, &options)?;
    ctx.logger.progress(1.0, "image stored");
    Ok(Drawing {
        key: stored.key,
        url: stored.url,
        size: stored.size,
        content_type: image.content_type,
        revised_prompt: image.revised_prompt,
    })
}

fn place_text(ctx: &Context, input: PlaceText) -> Result<Placement, TemplateError> {
    let layout = ctx.providers.analyze_image_layout(&LayoutRequest {
        provider: input.provider.into(),
        model: input.model,
        image_url: input.image_url,
        overlay_text: input.text,
    })?;
    Ok(Placement {
        zone: match layout.zone {
            LayoutZone::Top => "top",
            LayoutZone::Center => "center",
            LayoutZone::Bottom => "bottom",
        }
        .into(),
        align: match layout.align {
            LayoutAlign::Left => "left",
            LayoutAlign::Center => "center",
            LayoutAlign::Right => "right",
        }
        .into(),
        max_width_percent: layout.max_width_percent,
        justification: layout.justification,
    })
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
        .operation(
            Operation::new("ask", "Ask a model a question (generate-text).", ask).webhooks().estimated_cost_usd(0.05),
        )
        .operation(
            Operation::new("draw", "Generate an image and store it (generate-image).", draw).estimated_cost_usd(0.1),
        )
        .operation(Operation::new("place-text", "Where text fits on an image (analyze-image-layout).", place_text))
        .operation(Operation::new("speak", "Say a text and store the WAV (generate-speech).", speak))
        .operation(Operation::new(
            "voice",
            "Say a text with any voice provider, ElevenLabs included (speech.speak).",
            voice,
        ))
        .operation(Operation::new(
            "narrate",
            "Read a long text aloud into one WAV (speech.narrate, ElevenLabs).",
            narrate,
        ))
        .operation(
            Operation::new("film", "Generate a video clip and store it (generate-video, minutes).", film)
                .webhooks()
                .estimated_cost_usd(3.2),
        )
}

vidfarm_guest::export_template!(template);
