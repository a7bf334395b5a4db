//! `storyteller`: animated storytelling by fan-out. `tell` writes a short story as scenes
//! (generate-text), starts one child job per scene (`scene`: an animated title card rendered
//! with Remotion), waits for all of them, then stitches their videos into one with FFmpeg
//! crossfades (the render-spec path). A scene that fails fails the story with its reason.

use vidfarm_guest::prelude::*;
use vidfarm_guest::text::extract_json;

/// The payload of `tell`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Tell {
    /// The story's premise.
    #[schemars(length(min = 3, max = 1000))]
    premise: String,
    /// Scenes (default 3; the stitch takes up to 4).
    #[serde(default)]
    #[schemars(range(min = 2, max = 4))]
    scenes: Option<u8>,
    writer: ModelChoice,
    /// Output size (default 640×360).
    #[serde(default)]
    #[schemars(range(min = 160, max = 1920))]
    width: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 160, max = 1080))]
    height: Option<u32>,
}

/// One scene: the payload of `scene`.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
struct Scene {
    #[schemars(length(min = 1, max = 120))]
    title: String,
    #[schemars(length(min = 1, max = 400))]
    text: String,
    /// Background colour, `#rrggbb`.
    #[serde(default)]
    #[schemars(regex(pattern = "^#[0-9a-fA-F]{6}$"))]
    color: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1.0, max = 20.0))]
    seconds: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = 160, max = 1920))]
    width: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 160, max = 1080))]
    height: Option<u32>,
}

#[derive(Deserialize)]
struct WrittenScene {
    title: String,
    text: String,
}

#[derive(Serialize)]
struct Story {
    video: RenderedVideo,
    scenes: Vec<String>,
}

const PALETTE: [&str; 4] = ["#1d3557", "#6a4c93", "#2a9d8f", "#e76f51"];

fn tell(ctx: &Context, input: Tell) -> Result<Story, TemplateError> {
    let count = input.scenes.unwrap_or(3);
    let prompt = format!(
        "Tell a very short story in exactly {count} scenes. Premise: {}\n\
         Answer with JSON only: [{{\"title\": 2-5 words, \"text\": one or two sentences}}].",
        input.premise
    );
    let answer = ctx.providers.generate_text_with(&TextRequest {
        provider: input.writer.provider.into(),
        model: input.writer.model,
        prompt,
        system: Some("You are a concise storyteller for animated shorts.".into()),
        temperature: Some(0.9),
        max_output_tokens: Some(800),
    })?;
    let mut written: Vec<WrittenScene> = extract_json(&answer.text)
        .ok_or_else(|| TemplateError::new("story_unreadable", "the model's answer holds no scene list"))?;
    written.truncate(usize::from(count));
    if written.len() < 2 {
        return Err(TemplateError::new("story_unreadable", "the model wrote fewer than two scenes"));
    }
    ctx.logger.progress(0.2, "story written; rendering the scenes");
    let mut children = Vec::new();
    for (i, scene) in written.iter().enumerate() {
        let payload = Scene {
            title: scene.title.chars().take(120).collect(),
            text: scene.text.chars().take(400).collect(),
            color: Some(PALETTE[i % PALETTE.len()].into()),
            seconds: Some(3.0),
            width: input.width,
            height: input.height,
        };
        children.push(ctx.jobs.enqueue_child("scene", &payload)?);
    }
    let results = ctx.jobs.await_children(&children)?;
    let mut backgrounds = Vec::new();
    for result in results {
        match result.outcome {
            ChildOutcome::Succeeded(json_text) => {
                let video: RenderedVideo = serde_json::from_str(&json_text)
                    .map_err(|e| TemplateError::new("scene_unreadable", e.to_string()))?;
                let url = video.url.ok_or_else(|| TemplateError::new("scene_unreadable", "a scene has no URL"))?;
                backgrounds.push(json!({ "src": url, "type": "video" }));
            }
            ChildOutcome::Failed(error) => {
                return Err(TemplateError::new("scene_failed", format!("scene {}: {}", result.job_id, error.message)));
            }
            ChildOutcome::Cancelled => return Err(TemplateError::new("scene_cancelled", result.job_id)),
        }
    }
    ctx.logger.progress(0.8, "scenes rendered; stitching");
    let spec = json!({
        "canvas": { "width": input.width.unwrap_or(640), "height": input.height.unwrap_or(360), "fps": 30 },
        "backgrounds": backgrounds,
        "crossfade": 0.5,
    });
    let video = RenderedVideo::from(ctx.remotion.render_spec(&spec, Some("story.mp4"))?);
    Ok(Story { video, scenes: written.into_iter().map(|s| s.title).collect() })
}

fn scene(ctx: &Context, scene: Scene) -> Result<RenderedVideo, TemplateError> {
    let props = json!({
        "width": scene.width.unwrap_or(640), "height": scene.height.unwrap_or(360), "fps": 30,
        "text": scene.title, "subtitle": scene.text, "color": scene.color.unwrap_or_else(|| PALETTE[0].into()),
        "durationSeconds": scene.seconds.unwrap_or(3.0),
    });
    let rendered = ctx.remotion.render(&RenderRequest {
        composition_id: "TitleCard".into(),
        serve_url: None,
        entry_point: None,
        output_key: Some("scene.mp4".into()),
        input_props: props.to_string(),
    })?;
    Ok(RenderedVideo::from(rendered))
}

fn template() -> Template {
    Template::new("storyteller", env!("CARGO_PKG_VERSION"), "Animated stories: one child job per scene, stitched")
        .operation(Operation::new("tell", "Premise → an animated story video (fan-out per scene)", tell).webhooks())
        .operation(Operation::new("scene", "One animated title-card scene (Remotion)", scene))
}

vidfarm_guest::export_template!(template);
