//! `analyze-image-layout`: ask a vision model where overlay text fits on an image, as JSON,
//! and validate the answer into the spec's record (zone, align, max width, justification).

use crate::runtime::bindings::providers::{LayoutAlign, LayoutRequest, LayoutResponse, LayoutZone};
use serde::Deserialize;

/// The instruction every provider gets.
pub const SYSTEM: &str = "You lay out overlay text on a video frame. Look at the image and choose where the \
text stays legible without covering the subject. Answer with one JSON object only: {\"zone\": \"top\" | \
\"center\" | \"bottom\", \"align\": \"left\" | \"center\" | \"right\", \"max_width_percent\": a number from 10 \
to 100 (the widest the text block may be, as a percentage of the frame width), \"justification\": one short \
sentence}.";

pub fn user_prompt(request: &LayoutRequest) -> String {
    format!("Overlay text: {:?}", request.overlay_text)
}

#[derive(Deserialize)]
struct Answer {
    zone: String,
    align: String,
    #[serde(alias = "maxWidthPercent", alias = "max-width-percent")]
    max_width_percent: f64,
    #[serde(default)]
    justification: String,
}

/// Parse the model's text (possibly fenced in ```json) into a layout, naming the field that is
/// wrong when it does not fit.
pub fn parse(text: &str) -> Result<LayoutResponse, String> {
    let start = text.find('{').ok_or("the answer has no JSON object")?;
    let end = text.rfind('}').filter(|e| *e > start).ok_or("the answer has no complete JSON object")?;
    let answer: Answer =
        serde_json::from_str(&text[start..=end]).map_err(|e| format!("the layout JSON does not fit: {e}"))?;
    let zone = match answer.zone.to_ascii_lowercase().as_str() {
        "top" => LayoutZone::Top,
        "center" | "middle" => LayoutZone::Center,
        "bottom" => LayoutZone::Bottom,
        other => return Err(format!("zone must be top, center or bottom, not {other:?}")),
    };
    let align = match answer.align.to_ascii_lowercase().as_str() {
        "left" => LayoutAlign::Left,
        "center" => LayoutAlign::Center,
        "right" => LayoutAlign::Right,
        other => return Err(format!("align must be left, center or right, not {other:?}")),
    };
    if !(10.0..=100.0).contains(&answer.max_width_percent) {
        return Err(format!("max_width_percent must be between 10 and 100, not {}", answer.max_width_percent));
    }
    Ok(LayoutResponse {
        zone,
        align,
        max_width_percent: answer.max_width_percent as f32,
        justification: answer.justification.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_answer_with_camel_case_fields_is_accepted() {
        let text = "```json\n{\"zone\":\"Top\",\"align\":\"left\",\"maxWidthPercent\":62.5,\"justification\":\"sky is empty\"}\n```";
        let layout = parse(text).expect("a layout");
        assert_eq!((layout.zone, layout.align, layout.max_width_percent), (LayoutZone::Top, LayoutAlign::Left, 62.5));
        assert_eq!(layout.justification, "sky is empty");
    }

    #[test]
    fn a_wrong_answer_names_the_field() {
        let bad_zone = r#"{"zone":"side","align":"left","max_width_percent":50}"#;
        assert!(parse(bad_zone).expect_err("refused").contains("zone"));
        let too_wide = r#"{"zone":"top","align":"left","max_width_percent":180}"#;
        assert!(parse(too_wide).expect_err("refused").contains("max_width_percent"));
        assert!(parse("I think the top is best").expect_err("refused").contains("no JSON"));
    }
}
