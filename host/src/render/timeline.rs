//! From a checked spec and the probed lengths of its sources to one FFmpeg command: the
//! seed's duration rules, the background sequence with crossfades, the audio sequence with
//! fades.

use super::spec::{Fit, MAX_AUDIO_SECONDS, MediaType, RenderSpec, SpecError};
use std::path::Path;

/// What `ffprobe` found in one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Seconds; `None` for a still image.
    pub duration: Option<f64>,
    pub has_audio: bool,
}

/// The resolved timeline: every length known.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The output's length (seconds).
    pub duration: f64,
    /// Per background track (in order): how long it shows, before crossfade overlap.
    pub backgrounds: Vec<f64>,
    /// Per audio track: how much of it plays.
    pub audio: Vec<f64>,
    /// The crossfade actually used (shortened when segments are short).
    pub crossfade: f64,
}

fn problem(field: &str, text: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), problem: text.into() }
}

/// Apply the duration rules: the spec's `duration`, else the longest `parentDurationDecider`
/// track's end, else the longest track's end (backgrounds and audio each play in sequence).
pub fn resolve(spec: &RenderSpec, bg: &[Probe], audio: &[Probe], max_seconds: f64) -> Result<Timeline, SpecError> {
    let mut audio_lengths = Vec::with_capacity(spec.audio.len());
    for (i, (track, probe)) in spec.audio.iter().zip(audio).enumerate() {
        let Some(length) = probe.duration.filter(|_| probe.has_audio) else {
            return Err(problem(&format!("audio[{i}].src"), "has no audio stream"));
        };
        audio_lengths.push(track.duration.map_or(length, |d| d.min(length)));
    }
    let audio_total: f64 = audio_lengths.iter().sum();
    if audio_total > MAX_AUDIO_SECONDS {
        return Err(problem(
            "audio",
            format!("the audio tracks together last {:.0} s, more than 3 hours", audio_total),
        ));
    }
    // Background lengths as far as known: explicit, or a video's own length.
    let known: Vec<Option<f64>> = spec
        .backgrounds
        .iter()
        .zip(bg)
        .map(|(track, probe)| track.duration.or(if track.kind == MediaType::Video { probe.duration } else { None }))
        .collect();
    for (i, (track, probe)) in spec.backgrounds.iter().zip(bg).enumerate() {
        if track.kind == MediaType::Video && probe.duration.is_none() {
            return Err(problem(&format!("backgrounds[{i}].src"), "is not a video (no length); use type image"));
        }
    }
    let ends = |lengths: &[Option<f64>]| -> Vec<Option<f64>> {
        let mut at = Some(0.0);
        lengths
            .iter()
            .map(|l| {
                at = at.zip(*l).map(|(a, l)| a + l);
                at
            })
            .collect()
    };
    let bg_ends = ends(&known);
    let audio_ends = ends(&audio_lengths.iter().map(|l| Some(*l)).collect::<Vec<_>>());
    let decided = spec
        .backgrounds
        .iter()
        .zip(&bg_ends)
        .filter(|(t, _)| t.parent_duration_decider)
        .map(|(_, end)| *end)
        .chain(spec.audio.iter().zip(&audio_ends).filter(|(t, _)| t.parent_duration_decider).map(|(_, end)| *end))
        .collect::<Vec<_>>();
    let duration = match spec.duration {
        Some(d) => d,
        None if !decided.is_empty() => match decided.iter().copied().collect::<Option<Vec<f64>>>() {
            Some(ends) => ends.into_iter().fold(0.0, f64::max),
            None => return Err(problem("duration", "a deciding track follows an image without a duration")),
        },
        None => {
            let bg_known = bg_ends.last().copied().flatten().unwrap_or(0.0);
            let longest = bg_known.max(audio_total);
            if longest <= 0.0 {
                return Err(problem("duration", "required when no track has a length of its own (images only)"));
            }
            longest
        }
    };
    // The audio that would run past the end is cut there (its fade-out moves with it).
    let mut audio = Vec::with_capacity(audio_lengths.len());
    let mut at = 0.0;
    for length in audio_lengths {
        if at >= duration {
            break;
        }
        audio.push(length.min(duration - at));
        at += length;
    }
    if duration > max_seconds {
        return Err(problem(
            "duration",
            format!("the render would last {duration:.1} s, over the limit of {max_seconds} s"),
        ));
    }
    // Images without a length share what the known tracks leave; the last track stretches
    // (held or looped) to the end; tracks past the end are cut.
    let fixed: f64 = known.iter().flatten().sum();
    let flexible = known.iter().filter(|k| k.is_none()).count();
    let share = if flexible > 0 { ((duration - fixed) / flexible as f64).max(0.5) } else { 0.0 };
    let mut backgrounds = Vec::new();
    let mut at = 0.0;
    for length in known.iter().map(|k| k.unwrap_or(share)) {
        if at >= duration {
            break;
        }
        backgrounds.push(length.min(duration - at));
        at += length;
    }
    if let Some(last) = backgrounds.last_mut() {
        *last += (duration - at).max(0.0);
    }
    let shortest = backgrounds.iter().copied().fold(f64::INFINITY, f64::min);
    let crossfade = if backgrounds.len() > 1 { spec.crossfade.min(shortest / 2.0) } else { 0.0 };
    Ok(Timeline { duration, backgrounds, audio, crossfade })
}

/// The FFmpeg arguments rendering `spec` along `timeline` from local `bg`/`audio` files into
/// `output`, with key=value progress on stdout. Inputs are local files only.
pub fn ffmpeg_args(
    spec: &RenderSpec,
    timeline: &Timeline,
    bg: &[&Path],
    audio: &[&Path],
    output: &Path,
) -> Vec<String> {
    let canvas = &spec.canvas;
    let (w, h, fps) = (canvas.width, canvas.height, canvas.fps);
    let color = format!("0x{}", &canvas.background[1..]);
    let mut args: Vec<String> =
        ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"].map(String::from).to_vec();
    args.extend(["-protocol_whitelist", "file,pipe"].map(String::from));
    let mut filters = Vec::new();
    let c = timeline.crossfade;
    let n = timeline.backgrounds.len();
    for (i, length) in timeline.backgrounds.iter().enumerate() {
        // Every segment but the last runs `c` longer: the crossfade eats into the overlap.
        let span = length + if i + 1 < n { c } else { 0.0 };
        let track = &spec.backgrounds[i];
        match track.kind {
            MediaType::Image => args.extend(["-loop".into(), "1".into(), "-framerate".into(), fps.to_string()]),
            MediaType::Video => args.extend(["-stream_loop".into(), "-1".into()]),
        }
        args.extend(["-t".into(), format!("{span:.3}")]);
        args.extend(input(bg[i]));
        let fit = match track.fit {
            Fit::Cover => format!("scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"),
            Fit::Contain => format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={color}"
            ),
        };
        filters.push(format!(
            "[{i}:v]{fit},setsar=1,fps={fps},format=yuv420p,trim=duration={span:.3},setpts=PTS-STARTPTS[v{i}]"
        ));
    }
    let video_out = if n == 0 {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!("color=c={color}:s={w}x{h}:r={fps}:d={:.3}", timeline.duration));
        filters.push("[0:v]format=yuv420p[vout]".to_string());
        "[vout]".to_string()
    } else {
        if c > 0.0 {
            let mut chain = "[v0]".to_string();
            let mut length = timeline.backgrounds[0] + c;
            for i in 1..n {
                let out = format!("[x{i}]");
                filters
                    .push(format!("{chain}[v{i}]xfade=transition=fade:duration={c:.3}:offset={:.3}{out}", length - c));
                length += timeline.backgrounds[i] + if i + 1 < n { c } else { 0.0 } - c;
                chain = out;
            }
            chain
        } else {
            let inputs: String = (0..n).map(|i| format!("[v{i}]")).collect();
            filters.push(format!("{inputs}concat=n={n}:v=1:a=0[vcat]"));
            "[vcat]".to_string()
        }
    };
    let first_audio = args.iter().filter(|a| *a == "-i").count();
    for (i, length) in timeline.audio.iter().enumerate() {
        let track = &spec.audio[i];
        args.extend(input(audio[i]));
        let mut chain = format!("[{}:a]atrim=duration={length:.3},asetpts=PTS-STARTPTS", first_audio + i);
        if track.fade_in > 0.0 {
            chain += &format!(",afade=t=in:st=0:d={:.3}", track.fade_in.min(length / 2.0));
        }
        if track.fade_out > 0.0 {
            let d = track.fade_out.min(length / 2.0);
            chain += &format!(",afade=t=out:st={:.3}:d={d:.3}", length - d);
        }
        chain += &format!(",volume={:.3},aformat=sample_rates=48000:channel_layouts=stereo[a{i}]", track.volume);
        filters.push(chain);
    }
    let audio_out = (!timeline.audio.is_empty()).then(|| {
        let inputs: String = (0..timeline.audio.len()).map(|i| format!("[a{i}]")).collect();
        filters.push(format!(
            "{inputs}concat=n={}:v=0:a=1,apad,atrim=duration={:.3}[aout]",
            timeline.audio.len(),
            timeline.duration
        ));
        "[aout]".to_string()
    });
    args.extend(["-filter_complex".into(), filters.join(";"), "-map".into(), video_out]);
    if let Some(a) = audio_out {
        args.extend(["-map".into(), a, "-c:a".into(), "aac".into(), "-b:a".into(), "160k".into()]);
    }
    args.extend(
        ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
            .map(String::from),
    );
    args.extend(["-r".into(), fps.to_string(), "-t".into(), format!("{:.3}", timeline.duration)]);
    args.extend(["-progress".into(), "pipe:1".into(), output.display().to_string()]);
    args
}

/// Demuxers a source may be read with: media containers and still images. Playlists (HLS,
/// concat) are not among them — they could name other files, or URLs, for FFmpeg to read.
pub const SOURCE_FORMATS: &str =
    "mov,mp4,m4a,matroska,webm,avi,flv,mpegts,mp3,wav,ogg,flac,aac,png_pipe,jpeg_pipe,webp_pipe,gif,bmp_pipe,image2";

/// The most pixels a source frame may have (8K): checked when a source is probed, and set as
/// the decoders' own limit (`-max_pixels`), so no input can make FFmpeg allocate giant frames.
pub const MAX_INPUT_PIXELS: u64 = 7680 * 4320;

/// One local source, readable only as a file and only by a media demuxer, decoded under the
/// pixel limit.
fn input(path: &Path) -> [String; 8] {
    [
        "-max_pixels".into(),
        MAX_INPUT_PIXELS.to_string(),
        "-protocol_whitelist".into(),
        "file,pipe".into(),
        "-format_whitelist".into(),
        SOURCE_FORMATS.into(),
        "-i".into(),
        path.display().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> RenderSpec {
        RenderSpec::parse(&json.to_string(), 10_800.0).expect("valid spec")
    }
    const IMAGE: Probe = Probe { duration: None, has_audio: false };
    fn media(seconds: f64) -> Probe {
        Probe { duration: Some(seconds), has_audio: true }
    }

    #[test]
    fn an_explicit_duration_wins_and_images_share_it() {
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360}, "duration": 9,
            "backgrounds": [{"src": "job:a.png", "type": "image"}, {"src": "job:b.png", "type": "image"},
                            {"src": "job:c.png", "type": "image"}]}));
        let t = resolve(&s, &[IMAGE; 3], &[], 10_800.0).expect("resolves");
        assert_eq!((t.duration, t.backgrounds.clone()), (9.0, vec![3.0, 3.0, 3.0]));
        assert_eq!(t.crossfade, 0.5);
    }

    #[test]
    fn a_deciding_audio_track_sets_the_length_and_the_last_background_stretches() {
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360},
            "backgrounds": [{"src": "job:a.mp4", "type": "video"}],
            "audio": [{"src": "job:v.mp3"}, {"src": "job:m.mp3", "parentDurationDecider": true}]}));
        let t = resolve(&s, &[media(2.0)], &[media(4.0), media(3.5)], 10_800.0).expect("resolves");
        assert_eq!((t.duration, t.backgrounds.clone(), t.audio.clone()), (7.5, vec![7.5], vec![4.0, 3.5]));
    }

    #[test]
    fn without_deciders_the_longest_sequence_wins() {
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360},
            "backgrounds": [{"src": "job:a.mp4", "type": "video"}, {"src": "job:b.mp4", "type": "video"}],
            "audio": [{"src": "job:v.mp3", "duration": 2}]}));
        let t = resolve(&s, &[media(3.0), media(4.0)], &[media(10.0)], 10_800.0).expect("resolves");
        assert_eq!((t.duration, t.audio.clone()), (7.0, vec![2.0]));
    }

    #[test]
    fn images_alone_need_a_duration_and_audio_over_three_hours_is_refused() {
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360},
            "backgrounds": [{"src": "job:a.png", "type": "image"}]}));
        assert_eq!(resolve(&s, &[IMAGE], &[], 10_800.0).expect_err("no length").field, "duration");
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360},
            "audio": [{"src": "job:a.mp3"}, {"src": "job:b.mp3"}]}));
        let two_hours = media(7200.0);
        assert_eq!(resolve(&s, &[], &[two_hours, two_hours], 99_999.0).expect_err("too long").field, "audio");
    }

    #[test]
    fn the_command_reads_local_files_only_and_chains_crossfades() {
        let s = spec(serde_json::json!({"canvas": {"width": 640, "height": 360}, "duration": 6,
            "backgrounds": [{"src": "job:a.png", "type": "image"}, {"src": "job:b.png", "type": "image"}],
            "audio": [{"src": "job:v.mp3", "fadeIn": 1, "fadeOut": 1}]}));
        let t = resolve(&s, &[IMAGE; 2], &[media(8.0)], 10_800.0).expect("resolves");
        let (a, b, v, out) =
            (Path::new("/w/a.png"), Path::new("/w/b.png"), Path::new("/w/v.mp3"), Path::new("/w/o.mp4"));
        let args = ffmpeg_args(&s, &t, &[a, b], &[v], out).join(" ");
        assert_eq!(args.matches("-protocol_whitelist file,pipe -format_whitelist").count(), 3, "per input: {args}");
        assert_eq!(args.matches("-max_pixels 33177600 -protocol_whitelist").count(), 3, "decoders capped: {args}");
        assert!(args.contains("xfade=transition=fade:duration=0.500:offset=3.000"), "{args}");
        assert!(args.contains("afade=t=out:st=5.000:d=1.000"), "{args}");
        assert!(args.ends_with("-t 6.000 -progress pipe:1 /w/o.mp4"), "{args}");
    }
}
