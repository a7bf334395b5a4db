//! The JSON render spec of the JSON-to-video API (seed 001): a canvas, up to four background
//! tracks played one after another with crossfades (images held, videos looped to fill), and
//! audio tracks played one after another with fades. Checked before anything is fetched, so a
//! bad spec fails at once with the field and the problem.

use serde::Deserialize;

/// Largest canvas (the seed's 1920×1080 cap), either orientation.
pub const MAX_LONG_SIDE: u32 = 1920;
pub const MAX_SHORT_SIDE: u32 = 1080;
pub const MAX_BACKGROUNDS: usize = 4;
pub const MAX_AUDIO_TRACKS: usize = 32;
/// The audio tracks together may last this long (3 h).
pub const MAX_AUDIO_SECONDS: f64 = 3.0 * 3600.0;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderSpec {
    pub canvas: Canvas,
    /// The output's length in seconds; without it the deciders (or the longest track) set it.
    pub duration: Option<f64>,
    #[serde(default)]
    pub backgrounds: Vec<Background>,
    #[serde(default)]
    pub audio: Vec<AudioTrack>,
    /// Seconds of crossfade between background tracks (0 cuts).
    #[serde(default = "default_crossfade")]
    pub crossfade: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// `#rrggbb`, shown where no background covers the canvas.
    #[serde(default = "default_color")]
    pub background: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Video,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the canvas, cropping what overflows.
    #[default]
    Cover,
    /// Show all of it, letterboxed with the canvas colour.
    Contain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Background {
    /// An http(s) URL, `workspace:<key>` (the customer's files) or `job:<key>` (this job's).
    pub src: String,
    #[serde(rename = "type")]
    pub kind: MediaType,
    /// Seconds this track shows; images without one share the time left.
    pub duration: Option<f64>,
    #[serde(default)]
    pub fit: Fit,
    #[serde(default)]
    pub parent_duration_decider: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AudioTrack {
    pub src: String,
    /// Play only this many seconds of it.
    pub duration: Option<f64>,
    #[serde(default)]
    pub fade_in: f64,
    #[serde(default)]
    pub fade_out: f64,
    #[serde(default = "default_volume")]
    pub volume: f64,
    #[serde(default)]
    pub parent_duration_decider: bool,
}

fn default_crossfade() -> f64 {
    0.5
}
fn default_fps() -> u32 {
    30
}
fn default_color() -> String {
    "#000000".into()
}
fn default_volume() -> f64 {
    1.0
}

/// A spec problem: the field (a JSON path like `backgrounds[2].duration`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    pub field: String,
    pub problem: String,
}

fn problem(field: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), problem: problem.into() }
}

impl RenderSpec {
    /// Parse and check a spec against the limits; `max_seconds` caps the output's length.
    pub fn parse(json: &str, max_seconds: f64) -> Result<Self, SpecError> {
        let spec: RenderSpec = serde_json::from_str(json).map_err(|e| problem(field_of(&e), e.to_string()))?;
        spec.check(max_seconds)?;
        Ok(spec)
    }

    fn check(&self, max_seconds: f64) -> Result<(), SpecError> {
        let Canvas { width, height, fps, background } = &self.canvas;
        let (long, short) = if width >= height { (*width, *height) } else { (*height, *width) };
        if *width < 16 || *height < 16 {
            return Err(problem("canvas", "width and height must be at least 16"));
        }
        if long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE {
            return Err(problem("canvas", format!("{width}x{height} is larger than 1920x1080 (or 1080x1920)")));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(problem("canvas", "width and height must be even (H.264 with 4:2:0 colour)"));
        }
        if !(1..=60).contains(fps) {
            return Err(problem("canvas.fps", "must be between 1 and 60"));
        }
        if !is_hex_color(background) {
            return Err(problem("canvas.background", "must be a colour like #1a2b3c"));
        }
        if let Some(d) = self.duration {
            seconds("duration", d)?;
            if d > max_seconds {
                return Err(problem("duration", format!("{d} s is longer than the limit of {max_seconds} s")));
            }
        }
        if self.backgrounds.len() > MAX_BACKGROUNDS {
            return Err(problem("backgrounds", format!("at most {MAX_BACKGROUNDS} background tracks")));
        }
        if self.audio.len() > MAX_AUDIO_TRACKS {
            return Err(problem("audio", format!("at most {MAX_AUDIO_TRACKS} audio tracks")));
        }
        if self.backgrounds.is_empty() && self.audio.is_empty() {
            return Err(problem("backgrounds", "a spec needs at least one background or audio track"));
        }
        if !(0.0..=5.0).contains(&self.crossfade) {
            return Err(problem("crossfade", "must be between 0 and 5 seconds"));
        }
        for (i, track) in self.backgrounds.iter().enumerate() {
            check_src(&format!("backgrounds[{i}].src"), &track.src)?;
            if let Some(d) = track.duration {
                seconds(&format!("backgrounds[{i}].duration"), d)?;
            }
        }
        let mut declared_audio = 0.0;
        for (i, track) in self.audio.iter().enumerate() {
            check_src(&format!("audio[{i}].src"), &track.src)?;
            if let Some(d) = track.duration {
                seconds(&format!("audio[{i}].duration"), d)?;
                declared_audio += d;
            }
            for (name, value) in [("fadeIn", track.fade_in), ("fadeOut", track.fade_out)] {
                if !(0.0..=30.0).contains(&value) {
                    return Err(problem(format!("audio[{i}].{name}"), "must be between 0 and 30 seconds"));
                }
            }
            if !(0.0..=4.0).contains(&track.volume) {
                return Err(problem(format!("audio[{i}].volume"), "must be between 0 and 4"));
            }
        }
        if declared_audio > MAX_AUDIO_SECONDS {
            return Err(problem("audio", "the audio tracks together last more than 3 hours"));
        }
        Ok(())
    }
}

fn seconds(field: &str, value: f64) -> Result<(), SpecError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(problem(field, "must be a positive number of seconds")) }
}

fn check_src(field: &str, src: &str) -> Result<(), SpecError> {
    if src.starts_with("https://") || src.starts_with("http://") {
        return Ok(());
    }
    match src.strip_prefix("workspace:").or_else(|| src.strip_prefix("job:")) {
        // The key must stay inside its prefix: checked now, not when the render runs.
        Some(key) => crate::storage::keys::validate(key).map_err(|reason| problem(field, reason)),
        None => Err(problem(field, "must be an http(s) URL, `workspace:<key>` or `job:<key>`")),
    }
}

fn is_hex_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
}

/// The field a serde error is about, when its message names one.
fn field_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = text.split(marker).nth(1) {
            return rest.split('`').next().unwrap_or("spec").to_string();
        }
    }
    "spec".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: f64 = 3.0 * 3600.0;

    fn spec(json: serde_json::Value) -> Result<RenderSpec, SpecError> {
        RenderSpec::parse(&json.to_string(), MAX)
    }

    #[test]
    fn a_minimal_spec_gets_the_defaults() {
        let s = spec(serde_json::json!({
            "canvas": {"width": 1280, "height": 720},
            "backgrounds": [{"src": "workspace:a.png", "type": "image", "duration": 3}]
        }))
        .expect("valid");
        assert_eq!((s.canvas.fps, s.canvas.background.as_str(), s.crossfade), (30, "#000000", 0.5));
    }

    #[test]
    fn each_limit_names_its_field() {
        let base = |patch: serde_json::Value| {
            let mut v = serde_json::json!({
                "canvas": {"width": 1280, "height": 720},
                "backgrounds": [{"src": "https://x.test/a.mp4", "type": "video"}]
            });
            for (k, val) in patch.as_object().expect("object") {
                v[k] = val.clone();
            }
            spec(v).expect_err("refused").field
        };
        assert_eq!(base(serde_json::json!({"canvas": {"width": 3840, "height": 2160}})), "canvas");
        let portrait = serde_json::json!({"canvas": {"width": 1080, "height": 1920},
            "backgrounds": [{"src": "job:a.png", "type": "image", "duration": 1}]});
        assert!(spec(portrait).is_ok(), "1080x1920 (portrait) is within the limit");
        assert_eq!(base(serde_json::json!({"canvas": {"width": 1281, "height": 720}})), "canvas");
        assert_eq!(base(serde_json::json!({"canvas": {"width": 1280, "height": 720, "fps": 120}})), "canvas.fps");
        assert_eq!(base(serde_json::json!({"duration": 99999})), "duration");
        assert_eq!(base(serde_json::json!({"duration": -1})), "duration");
        let five = vec![serde_json::json!({"src": "job:a.png", "type": "image"}); 5];
        assert_eq!(base(serde_json::json!({"backgrounds": five})), "backgrounds");
        assert_eq!(base(serde_json::json!({"audio": [{"src": "job:a.mp3", "duration": 11000}]})), "audio");
        assert_eq!(base(serde_json::json!({"audio": [{"src": "job:a.mp3", "fadeIn": 60}]})), "audio[0].fadeIn");
        assert_eq!(
            base(serde_json::json!({"backgrounds": [{"src": "/etc/passwd", "type": "image"}]})),
            "backgrounds[0].src"
        );
        assert_eq!(base(serde_json::json!({"backgrounds": [{"src": "job:a.png"}]})), "type");
        assert_eq!(base(serde_json::json!({"colour": 1})), "colour");
    }
}
