//! `research-render`: the hybrid pattern. `produce` researches a topic with Perplexity, has a
//! writer turn the findings into on-screen captions, draws one image per caption, asks a
//! vision model where each caption fits on its image (analyze-image-layout), and renders the
//! captions over the images with its own Remotion composition (`Explainer`, in `remotion/`). The research notes are stored beside the video.

use vidfarm_guest::prelude::*;
use vidfarm_guest::text::{data_url, extract_json};

/// The payload of `produce`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Produce {
    /// What to research and explain.
    #[schemars(length(min = 3, max = 500))]
    topic: String,
    /// Captions (and images) in the video (default 3).
    #[serde(default)]
    #[schemars(range(min = 1, max = 6))]
    scenes: Option<u8>,
    /// The research model (Perplexity's `sonar` family; any text provider works).
    researcher: ModelChoice,
    writer: ModelChoice,
    illustrator: ModelChoice,
    /// A vision model placing each caption on its image.
    layout: ModelChoice,
    /// Output size (default 1280×720).
    #[serde(default)]
    #[schemars(range(min = 160, max = 1920))]
    width: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 160, max = 1080))]
    height: Option<u32>,
}

#[derive(Deserialize)]
struct Caption {
    caption: String,
    visual: String,
}

#[derive(Serialize)]
struct Placed {
    caption: String,
    image_key: String,
    zone: &'static str,
    align: &'static str,
    max_width_percent: f32,
}

#[derive(Serialize)]
struct Produced {
    video: RenderedVideo,
    research_key: String,
    scenes: Vec<Placed>,
}

fn text(ctx: &Context, model: &ModelChoice, prompt: String, system: &str) -> Result<String, TemplateError> {
    let answer = ctx.providers.generate_text_with(&TextRequest {
        provider: model.provider.into(),
        model: model.model.clone(),
        prompt,
        system: Some(system.into()),
        temperature: Some(0.4),
        max_output_tokens: Some(1200),
    })?;
    Ok(answer.text)
}

fn produce(ctx: &Context, input: Produce) -> Result<Produced, TemplateError> {
    let count = usize::from(input.scenes.unwrap_or(3));
    let research = text(
        ctx,
        &input.researcher,
        format!("Research: {}. List the 3 to 6 most important, current facts, each with its source.", input.topic),
        "You are a careful researcher. Cite sources.",
    )?;
    let notes = ctx.storage.put_text("research.md", &format!("# {}\n\n{research}\n", input.topic))?;
    ctx.logger.progress(0.2, "researched");
    let written = text(
        ctx,
        &input.writer,
        format!(
            "From these research notes write exactly {count} on-screen captions (at most 14 words each) for an \
             explainer video, each with an image prompt.\nAnswer with JSON only: \
             [{{\"caption\": string, \"visual\": string}}]\n\nNotes:\n{research}"
        ),
        "You write clear, accurate explainer captions.",
    )?;
    let mut captions: Vec<Caption> = extract_json(&written)
        .ok_or_else(|| TemplateError::new("captions_unreadable", "the writer's answer holds no caption list"))?;
    captions.truncate(count);
    if captions.is_empty() {
        return Err(TemplateError::new("captions_unreadable", "the writer wrote no captions"));
    }
    ctx.logger.progress(0.35, "captions written");
    let mut placed = Vec::with_capacity(captions.len());
    let mut scenes = Vec::with_capacity(captions.len());
    for (i, caption) in captions.iter().enumerate() {
        let image = ctx.providers.generate_image(&ImageRequest {
            provider: input.illustrator.provider.into(),
            model: input.illustrator.model.clone(),
            prompt: format!("{} Clean composition with calm space for a caption.", caption.visual),
            size: None,
        })?;
        let options =
            PutOptions { content_type: image.content_type.clone(), kind: Some("image".into()), metadata: "{}".into() };
        let stored = ctx.storage.put_bytes(&format!("images/scene-{:02}.png", i + 1), &image.bytes, &options)?;
        let layout = ctx.providers.analyze_image_layout(&LayoutRequest {
            provider: input.layout.provider.into(),
            model: input.layout.model.clone(),
            image_url: data_url(&image.content_type, &image.bytes),
            overlay_text: caption.caption.clone(),
        })?;
        let zone = match layout.zone {
            LayoutZone::Top => "top",
            LayoutZone::Center => "center",
            LayoutZone::Bottom => "bottom",
        };
        let align = match layout.align {
            LayoutAlign::Left => "left",
            LayoutAlign::Center => "center",
            LayoutAlign::Right => "right",
        };
        scenes.push(json!({
            "imageUrl": format!("job:{}", stored.key), "text": caption.caption, "durationSeconds": 3.0,
            "layout": { "zone": zone, "align": align, "maxWidthPercent": layout.max_width_percent },
        }));
        placed.push(Placed {
            caption: caption.caption.clone(),
            image_key: stored.key,
            zone,
            align,
            max_width_percent: layout.max_width_percent,
        });
        ctx.logger.progress(0.35 + 0.4 * (i + 1) as f64 / captions.len() as f64, "scene laid out");
    }
    let props = json!({
        "width": input.width.unwrap_or(1280), "height": input.height.unwrap_or(720), "fps": 30,
        "title": input.topic, "scenes": scenes,
    });
    let rendered = ctx.remotion.render(&RenderRequest {
        composition_id: "Explainer".into(),
        serve_url: None,
        entry_point: None,
        output_key: Some("explainer.mp4".into()),
        input_props: props.to_string(),
    })?;
    Ok(Produced { video: RenderedVideo::from(rendered), research_key: notes.key, scenes: placed })
}

fn template() -> Template {
    Template::new(
        "research-render",
        env!("CARGO_PKG_VERSION"),
        "Research a topic, lay captions over generated images, render",
    )
    .operation(
        Operation::new(
            "produce",
            "Topic → researched, captioned explainer MP4 (Perplexity + images + Remotion)",
            produce,
        )
        .webhooks()
        .estimated_cost_usd(0.3),
    )
}

vidfarm_guest::export_template!(template);
