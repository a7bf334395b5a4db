//! `ugc-voiceover`: the pure-AI multi-stage pattern. Three operations a product chains:
//! `scaffold` (topic → a scene-by-scene script, generate-text), `storyboard` (script → one
//! generated image per scene, stored), `render` (storyboard → a captioned vertical video,
//! its own Remotion composition `UgcVideo` in `remotion/`, narrated scene by scene when a
//! `narrator` is given: each scene lasts as long as its spoken line). Each stage is its own job, so a customer can review and edit
//! the script or swap an image before paying for the next one.

use vidfarm_guest::prelude::*;
use vidfarm_guest::text::extract_json;

/// The payload of `scaffold`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Scaffold {
    /// What the video is about.
    #[schemars(length(min = 3, max = 500))]
    topic: String,
    /// Who it speaks to (shapes tone and vocabulary).
    #[serde(default)]
    #[schemars(length(max = 200))]
    audience: Option<String>,
    /// How many scenes (default 4).
    #[serde(default)]
    #[schemars(range(min = 2, max = 8))]
    scenes: Option<u8>,
    writer: ModelChoice,
}

/// One scene of a script: what is said, and what the frame shows.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
struct ScriptScene {
    #[schemars(length(min = 1, max = 400))]
    narration: String,
    #[schemars(length(min = 1, max = 600))]
    visual: String,
}

/// A script: what `scaffold` returns and `storyboard` takes.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
struct Script {
    #[schemars(length(min = 1, max = 200))]
    title: String,
    #[schemars(length(min = 1, max = 8))]
    scenes: Vec<ScriptScene>,
}

fn scaffold(ctx: &Context, input: Scaffold) -> Result<Script, TemplateError> {
    let count = input.scenes.unwrap_or(4);
    let audience = input.audience.as_deref().unwrap_or("a general social-media audience");
    let prompt = format!(
        "Write a {count}-scene vertical UGC video script about: {}. Audience: {audience}.\n\
         Answer with JSON only: {{\"title\": string, \"scenes\": [{{\"narration\": one spoken sentence, \
         \"visual\": what the frame shows, as an image prompt}}]}} with exactly {count} scenes.",
        input.topic
    );
    ctx.logger.progress(0.1, "writing the script");
    let answer = ctx.providers.generate_text_with(&TextRequest {
        provider: input.writer.provider.into(),
        model: input.writer.model,
        prompt,
        system: Some("You write punchy, concrete short-form video scripts.".into()),
        temperature: Some(0.8),
        max_output_tokens: Some(1200),
    })?;
    let mut script: Script = extract_json(&answer.text).ok_or_else(|| {
        let start: String = answer.text.chars().take(200).collect();
        TemplateError::new("script_unreadable", "the model's answer holds no script JSON")
            .with_details(json!({ "answer_start": start }))
    })?;
    script.scenes.truncate(usize::from(count));
    if script.scenes.is_empty() {
        return Err(TemplateError::new("script_unreadable", "the model wrote no scenes"));
    }
    ctx.storage.put_json("script.json", &script)?;
    ctx.logger.info("script written", json!({ "title": script.title, "scenes": script.scenes.len() }));
    Ok(script)
}

/// The payload of `storyboard`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StoryboardRequest {
    script: Script,
    illustrator: ModelChoice,
    /// Image size, e.g. `1024x1792` (portrait).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]{2,4}x[0-9]{2,4}$"))]
    size: Option<String>,
}

/// One storyboard frame: the narration and its image (a signed URL from storage).
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
struct Frame {
    #[schemars(length(min = 1, max = 400))]
    narration: String,
    /// The frame's image: an http(s) URL (as `storyboard` returns) or `workspace:<key>`.
    #[schemars(length(min = 1, max = 4096))]
    image: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Storyboard {
    #[schemars(length(min = 1, max = 200))]
    title: String,
    #[schemars(length(min = 1, max = 8))]
    frames: Vec<Frame>,
}

fn storyboard(ctx: &Context, input: StoryboardRequest) -> Result<Storyboard, TemplateError> {
    let total = input.script.scenes.len();
    let mut frames = Vec::with_capacity(total);
    for (i, scene) in input.script.scenes.iter().enumerate() {
        let image = ctx.providers.generate_image(&ImageRequest {
            provider: input.illustrator.provider.into(),
            model: input.illustrator.model.clone(),
            prompt: format!("{} Vertical social-video frame, photographic, no text.", scene.visual),
            size: input.size.clone(),
        })?;
        let options =
            PutOptions { content_type: image.content_type.clone(), kind: Some("image".into()), metadata: "{}".into() };
        let stored = ctx.storage.put_bytes(&format!("storyboard/scene-{:02}.png", i + 1), &image.bytes, &options)?;
        let image = stored.url.unwrap_or_else(|| format!("job:{}", stored.key));
        frames.push(Frame { narration: scene.narration.clone(), image });
        ctx.logger.progress((i + 1) as f64 / total as f64, &format!("frame {} of {total} drawn", i + 1));
    }
    Ok(Storyboard { title: input.script.title, frames })
}

/// Who reads the narration aloud, with the customer's key for that provider.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Narrator {
    provider: VoiceProviderName,
    /// e.g. `gpt-4o-mini-tts`, `tts-1`, `gemini-2.5-flash-preview-tts`, `eleven_multilingual_v2`.
    #[schemars(length(min = 1, max = 200))]
    model: String,
    /// e.g. `alloy` (OpenAI), `Kore` (Gemini), a voice id such as `JBFqnCBsd6RMkjVDRZzb` (ElevenLabs).
    #[schemars(length(min = 1, max = 100))]
    voice: String,
    /// How to speak: tone, pace, accent (OpenAI, Gemini).
    #[serde(default)]
    #[schemars(length(max = 500))]
    instructions: Option<String>,
    /// ElevenLabs' `voice_settings`: `stability`, `similarity_boost`, `style`, `speed`.
    #[serde(default)]
    voice_settings: Option<serde_json::Map<String, Value>>,
}

/// The payload of `render`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RenderRequestIn {
    storyboard: Storyboard,
    /// Speak each frame's narration (otherwise the video is captioned only).
    #[serde(default)]
    narrator: Option<Narrator>,
    /// Output size (default 720×1280, vertical).
    #[serde(default)]
    #[schemars(range(min = 160, max = 1080))]
    width: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 160, max = 1920))]
    height: Option<u32>,
}

/// Seconds a frame stays on screen: time to read its caption, at least 2.5 s.
fn seconds_for(narration: &str) -> f64 {
    (narration.split_whitespace().count() as f64 / 2.6).clamp(2.5, 12.0)
}

/// Silence after a spoken line before the next scene.
const PAUSE_SECONDS: f64 = 0.5;

fn render(ctx: &Context, input: RenderRequestIn) -> Result<RenderedVideo, TemplateError> {
    let total = input.storyboard.frames.len();
    let mut scenes = Vec::with_capacity(total);
    for (i, frame) in input.storyboard.frames.iter().enumerate() {
        let mut scene = json!({ "imageUrl": frame.image, "text": frame.narration,
            "durationSeconds": seconds_for(&frame.narration) });
        // A frame with nothing to say (blank narration) stays silent.
        if let Some(narrator) = input.narrator.as_ref().filter(|_| !frame.narration.trim().is_empty()) {
            let spoken = ctx.speech.speak(&SpeakRequest {
                provider: narrator.provider.into(),
                model: narrator.model.clone(),
                text: frame.narration.clone(),
                voice: narrator.voice.clone(),
                key: format!("narration/scene-{:02}.wav", i + 1),
                instructions: narrator.instructions.clone(),
                voice_settings: narrator.voice_settings.clone().map(|s| Value::Object(s).to_string()),
                seed: None,
            })?;
            // The scene lasts as long as its line, and never less than reading the caption takes.
            scene["durationSeconds"] =
                json!(seconds_for(&frame.narration).max(spoken.duration_seconds + PAUSE_SECONDS));
            scene["audioUrl"] = json!(format!("job:{}", spoken.key));
            ctx.logger.progress(0.05 * (i + 1) as f64 / total as f64, &format!("scene {} of {total} narrated", i + 1));
        }
        scenes.push(scene);
    }
    let props = json!({
        "width": input.width.unwrap_or(720), "height": input.height.unwrap_or(1280), "fps": 30,
        "title": input.storyboard.title, "scenes": scenes,
    });
    ctx.logger.progress(0.05, "render submitted");
    let rendered = ctx.remotion.render(&RenderRequest {
        composition_id: "UgcVideo".into(),
        serve_url: None,
        entry_point: None,
        output_key: Some("ugc.mp4".into()),
        input_props: props.to_string(),
    })?;
    ctx.logger.progress(1.0, "video ready");
    Ok(RenderedVideo::from(rendered))
}

fn template() -> Template {
    Template::new(
        "ugc-voiceover",
        env!("CARGO_PKG_VERSION"),
        "UGC videos in three AI stages: script, storyboard, render",
    )
    .operation(Operation::new("scaffold", "Topic → a scene-by-scene script (generate-text)", scaffold).webhooks())
    .operation(
        Operation::new("storyboard", "Script → one generated image per scene, stored", storyboard)
            .webhooks()
            .estimated_cost_usd(0.2),
    )
    .operation(
        Operation::new("render", "Storyboard → captioned, optionally narrated, vertical MP4 (Remotion)", render)
            .webhooks(),
    )
}

vidfarm_guest::export_template!(template);
