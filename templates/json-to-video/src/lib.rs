//! `json-to-video`: the render pipeline of the JSON-to-video API (seed 001) as a template.
//! `render` takes the JSON render spec — a canvas, up to four background tracks (videos, or
//! images held on screen) with crossfades, audio tracks one after another with fades — and
//! produces an MP4. The payload schema carries the spec's limits, so a bad spec is refused
//! with a 422 before any job exists; the host's FFmpeg renderer checks them again.

use schemars::{Schema, SchemaGenerator, json_schema};
use vidfarm_guest::prelude::*;

/// The spec (the payload of `render`): the host's render-spec format, field for field. Marked
/// `x-vidfarm-render-spec`, so the host checks it too (including whether it can render it
/// within its render timeout) before the job is created.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("x-vidfarm-render-spec" = true))]
struct RenderSpec {
    canvas: Canvas,
    /// The output's length in seconds; without it, the `parentDurationDecider` tracks (or the
    /// longest track) decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 10800.0))]
    duration: Option<f64>,
    /// Up to four background tracks, shown one after another.
    #[serde(default)]
    #[schemars(length(max = 4))]
    backgrounds: Vec<Background>,
    /// Audio tracks, played one after another (together at most 3 hours).
    #[serde(default)]
    #[schemars(length(max = 32))]
    audio: Vec<AudioTrack>,
    /// Seconds of crossfade between backgrounds (default 0.5; 0 cuts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 5.0))]
    crossfade: Option<f64>,
}

/// Width × height within 1920×1080 (landscape) or 1080×1920 (portrait), even numbers.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Canvas {
    width: u32,
    height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    background: Option<String>,
}

impl JsonSchema for Canvas {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Canvas".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": false,
            "required": ["width", "height"],
            "properties": {
                "width": { "type": "integer", "minimum": 16, "maximum": 1920, "multipleOf": 2 },
                "height": { "type": "integer", "minimum": 16, "maximum": 1920, "multipleOf": 2 },
                "fps": { "type": "integer", "minimum": 1, "maximum": 60 },
                "background": { "type": "string", "pattern": "^#[0-9a-fA-F]{6}$" }
            },
            "anyOf": [
                { "properties": { "width": { "maximum": 1920 }, "height": { "maximum": 1080 } } },
                { "properties": { "width": { "maximum": 1080 }, "height": { "maximum": 1920 } } }
            ]
        })
    }
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum MediaType {
    Video,
    Image,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Fit {
    Cover,
    Contain,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Background {
    /// An http(s) URL, `workspace:<key>` (a file uploaded with `POST /files/sign-upload`) or
    /// `job:<key>`.
    #[schemars(regex(pattern = r"^(https?://|workspace:|job:).+"), length(max = 4096))]
    src: String,
    #[serde(rename = "type")]
    kind: MediaType,
    /// Seconds on screen; images without one share the time left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 10800.0))]
    duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fit: Option<Fit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_duration_decider: Option<bool>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AudioTrack {
    #[schemars(regex(pattern = r"^(https?://|workspace:|job:).+"), length(max = 4096))]
    src: String,
    /// Play only the first this-many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 10800.0))]
    duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 30.0))]
    fade_in: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 30.0))]
    fade_out: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 4.0))]
    volume: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_duration_decider: Option<bool>,
}

fn render(ctx: &Context, spec: RenderSpec) -> Result<RenderedVideo, TemplateError> {
    let tracks = spec.backgrounds.len() + spec.audio.len();
    ctx.logger.info(
        "rendering the spec",
        json!({ "tracks": tracks, "width": spec.canvas.width, "height": spec.canvas.height }),
    );
    ctx.logger.progress(0.05, "render submitted");
    let video = RenderedVideo::from(ctx.remotion.render_spec(&spec, Some("video.mp4"))?);
    ctx.logger.progress(1.0, "video ready");
    Ok(video)
}

fn template() -> Template {
    Template::new("json-to-video", env!("CARGO_PKG_VERSION"), "Render a JSON video spec (backgrounds, audio) to an MP4")
        .operation(
            Operation::new("render", "Render the JSON spec to an MP4 with FFmpeg", render)
                .webhooks()
                .estimated_cost_usd(0.05),
        )
}

vidfarm_guest::export_template!(template);
