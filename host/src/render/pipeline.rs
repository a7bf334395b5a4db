//! One render from request to stored output: fetch the sources, run the backend (or have the
//! provider generate the clip) in a scratch directory, probe what came out, store it under the
//! job's prefix.

use super::bundles::{TemplateBundle, TemplateBundles};
use super::remotion::Remotion;
use super::sources::Sources;
use super::spec::RenderSpec;
use super::timeline::{self, Probe};
use super::{Failure, Progress, RenderScope, RenderSettings};
use crate::capabilities::ObjectStore;
use crate::providers::narration::NarrationTask;
use crate::providers::video::VideoTask;
use crate::providers::{NarrationOutput, ProviderRouter, VideoScope};
use crate::runtime::bindings::remotion::RenderResult;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a job asked to render (stored as the render's request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RenderTask {
    /// A JSON render spec, rendered with FFmpeg.
    Spec { spec: serde_json::Value },
    /// A Remotion composition: of the template's own bundle when its version carries one
    /// (`bundle`), else of the operator's bundles.
    Remotion {
        composition_id: String,
        serve_url: Option<String>,
        /// With a template bundle: the entry it was built from (the only one it may name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_point: Option<String>,
        input_props: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<TemplateBundle>,
    },
    /// A clip a provider generates (Veo): submitted, polled and downloaded by the host.
    Generation(VideoTask),
    /// A long text a provider narrates (ElevenLabs), spoken in parts and joined into a WAV.
    Narration(NarrationTask),
}

impl RenderTask {
    pub fn kind(&self) -> &'static str {
        match self {
            RenderTask::Spec { .. } => "spec",
            RenderTask::Remotion { .. } => "remotion",
            RenderTask::Generation(_) | RenderTask::Narration(_) => "generation",
        }
    }

    /// The media type of its output.
    pub fn content_type(&self) -> &'static str {
        match self {
            RenderTask::Narration(_) => "audio/wav",
            _ => "video/mp4",
        }
    }

    /// The ledger type of its charge.
    pub fn event_type(&self) -> &'static str {
        match self {
            RenderTask::Generation(_) | RenderTask::Narration(_) => "ai_generation",
            _ => "render",
        }
    }
}

/// A finished render: what the template receives, and what it cost the platform.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub result: RenderResult,
    /// What the render cost the platform, nano-USD (its output's minutes at the rate).
    pub cost_nusd: i64,
    pub seconds: f64,
    /// The stored output's size (counted against the customer's storage quota).
    pub bytes: u64,
    /// The provider and model a generation's charge names (none for renders).
    pub provider_model: Option<(String, String)>,
}

/// Everything a render needs; shared by the render worker and the dev runner.
pub struct Pipeline {
    pub settings: RenderSettings,
    pub store: Arc<dyn ObjectStore>,
    pub sources: Sources,
    /// This host's measured FFmpeg speed: specs that could not finish within the timeout are
    /// refused up front.
    pub speed: super::speed::RenderSpeed,
    /// The provider gateway that runs video generations (none: the dev runner).
    pub generator: Option<Arc<ProviderRouter>>,
    /// Where templates' own Remotion bundles are unpacked (none: no template brings one).
    pub bundles: Option<TemplateBundles>,
}

impl Pipeline {
    pub fn new(
        settings: RenderSettings,
        store: Arc<dyn ObjectStore>,
        signer: Option<crate::storage::UrlSigner>,
    ) -> Self {
        let sources = Sources {
            store: store.clone(),
            signer,
            allow_private: settings.allow_private_sources,
            timeout: settings.timeout,
        };
        Self { settings, store, sources, speed: Default::default(), generator: None, bundles: None }
    }

    /// Run video generations through `gateway` (its keys, endpoints and HTTP clients).
    pub fn with_generator(mut self, gateway: Arc<ProviderRouter>) -> Self {
        self.generator = Some(gateway);
        self
    }

    /// Resolve templates' own Remotion bundles through `bundles`.
    pub fn with_bundles(mut self, bundles: TemplateBundles) -> Self {
        self.bundles = Some(bundles);
        self
    }

    /// The backend `task` needs, or why it cannot run here.
    pub fn backend_for(&self, task: &RenderTask) -> Result<&'static str, Failure> {
        match task {
            RenderTask::Spec { .. } => Ok("ffmpeg"),
            RenderTask::Remotion { .. } => match &self.settings.remotion {
                Some(remotion) => Ok(remotion.mode.backend_name()),
                None => Err(Failure::Unavailable(
                    "no Remotion renderer is configured on this host (see docs/rendering.md)".into(),
                )),
            },
            RenderTask::Generation(video) => match &self.generator {
                Some(_) => Ok(video.backend()),
                None => Err(Failure::Unavailable(
                    "video generation runs on the platform (`vidfarm serve`), not in the dev runner".into(),
                )),
            },
            RenderTask::Narration(_) => match &self.generator {
                Some(_) => Ok("elevenlabs"),
                None => Err(Failure::Unavailable(
                    "narration runs on the platform (`vidfarm serve`), not in the dev runner".into(),
                )),
            },
        }
    }

    /// Checks made before a render is queued, so a bad request fails the call at once.
    pub fn check(&self, task: &RenderTask) -> Result<(), Failure> {
        self.backend_for(task)?;
        match task {
            RenderTask::Spec { spec } => {
                let spec = RenderSpec::parse(&spec.to_string(), self.settings.max_seconds)
                    .map_err(|e| Failure::Invalid(format!("spec.{e}")))?;
                if let Some(seconds) = spec.duration {
                    self.fits_timeout(seconds, &spec)?;
                }
            }
            RenderTask::Remotion { composition_id, serve_url, entry_point, bundle, .. } => {
                if composition_id.trim().is_empty() {
                    return Err(Failure::Invalid("composition-id: must not be empty".into()));
                }
                if let Some(bundle) = bundle {
                    return self.check_own_bundle(bundle, serve_url.as_deref(), entry_point.as_deref());
                }
                if let Some(entry) = entry_point {
                    return Err(Failure::Invalid(format!(
                        "entry-point: `{entry}` names no bundle of this template: a template's compositions are \
                         bundled by `vidfarm template build` from its `remotion/` folder and published with it"
                    )));
                }
                // A bundle is code Chromium runs on this host: only the operator's bundles and
                // the template's own (signed with it).
                let allowed = self.settings.remotion.as_ref().map(|r| r.other_bundles.as_slice()).unwrap_or_default();
                if let Some(url) = serve_url
                    && !allowed.contains(url)
                {
                    return Err(Failure::Invalid(format!(
                        "serve-url: `{url}` is not one of this host's bundles (VIDFARM_REMOTION_OTHER_BUNDLES)"
                    )));
                }
            }
            RenderTask::Generation(video) => {
                if let Some(refusal) = video.refusal() {
                    return Err(Failure::Invalid(refusal));
                }
            }
            RenderTask::Narration(narration) => {
                if let Some(refusal) = narration.refusal() {
                    return Err(Failure::Invalid(refusal));
                }
            }
        }
        Ok(())
    }

    /// A template that carries its compositions renders only them: no other bundle, and no
    /// entry point but the one its bundle was built from.
    fn check_own_bundle(
        &self,
        bundle: &TemplateBundle,
        serve_url: Option<&str>,
        entry: Option<&str>,
    ) -> Result<(), Failure> {
        if let Some(url) = serve_url {
            return Err(Failure::Invalid(format!(
                "serve-url: `{url}`: {}@{} renders only the compositions it was published with (leave serve-url out)",
                bundle.template_id, bundle.version
            )));
        }
        if matches!(self.settings.remotion.as_ref().map(|r| &r.mode), Some(super::RemotionMode::Lambda { .. })) {
            return Err(Failure::Unavailable(
                "a template's own compositions render locally; this host renders Remotion on Lambda".into(),
            ));
        }
        if !super::process::can_isolate_network() {
            return Err(Failure::Unavailable(
                "this host cannot cut a template's renderer off the network (`unshare --net --map-root-user` \
                 fails: unprivileged user namespaces are off), so it does not render a template's own compositions"
                    .into(),
            ));
        }
        let Some(entry) = entry else { return Ok(()) };
        let built_from = self.bundles.as_ref().and_then(|b| super::bundles::entry_point(&b.dir, bundle));
        if built_from.as_deref() != Some(entry) {
            return Err(Failure::Invalid(format!(
                "entry-point: `{entry}` is not the entry the template's bundle was built from ({})",
                built_from.as_deref().unwrap_or("unknown")
            )));
        }
        Ok(())
    }

    /// Run `task` to its stored output at `output_key` (full key; `relative_key` is what the
    /// template sees).
    pub async fn run(
        &self,
        scope: &RenderScope,
        task: &RenderTask,
        output_key: &str,
        relative_key: &str,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<Rendered, Failure> {
        std::fs::create_dir_all(&self.settings.work_dir).map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
        let scratch =
            tempfile::tempdir_in(&self.settings.work_dir).map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
        let output = scratch.path().join("output.mp4");
        let backend = self.backend_for(task)?;
        let work = async {
            match task {
                RenderTask::Spec { spec } => {
                    self.render_spec(scope, spec, scratch.path(), &output, progress, cancel).await.map(|()| 0)
                }
                RenderTask::Remotion { composition_id, serve_url, input_props, bundle, .. } => {
                    let remotion = self.settings.remotion.as_ref().ok_or(Failure::Unavailable("no Remotion".into()))?;
                    progress.send_modify(|p| p.stage = "fetching");
                    // The template's own bundle, unpacked on this host (fetched and checked
                    // against its signed digest if this host has not yet).
                    let own = match bundle {
                        // Another host's settings may differ from the one that queued it.
                        Some(_) if matches!(remotion.mode, super::RemotionMode::Lambda { .. }) => {
                            return Err(Failure::Unavailable(
                                "a template's own compositions render locally; this host renders on Lambda".into(),
                            ));
                        }
                        Some(bundle) => {
                            let bundles = self.bundles.as_ref().ok_or(Failure::Unavailable(
                                "this host cannot render a template's own compositions".into(),
                            ))?;
                            Some(bundles.local_dir(bundle).await?.display().to_string())
                        }
                        None => None,
                    };
                    let input_props = self.inline_assets(scope, input_props).await?;
                    let request = super::remotion::Request {
                        composition_id,
                        serve_url: own.as_deref().or(serve_url.as_deref()),
                        template_bundle: own.is_some(),
                        // The data dir the bundles live in: the template's renderer sees none of it.
                        hide: own.as_ref().and(self.bundles.as_ref()).and_then(|b| b.dir.parent()),
                        input_props: &input_props,
                        output: &output,
                        remote: &scope.remote,
                    };
                    let limits = self.settings.process_limits(false);
                    Remotion { settings: remotion, limits }.render(&request, progress, cancel).await.map(|()| 0)
                }
                RenderTask::Generation(video) => {
                    let gateway = self.generator.as_ref().ok_or(Failure::Unavailable("no generator".into()))?;
                    let of =
                        VideoScope { customer_id: &scope.customer_id, job_id: &scope.job_id, remote: &scope.remote };
                    let max = self.settings.max_output_bytes;
                    gateway.generate_video(&of, video, &output, max, progress, cancel).await.map(|()| 0)
                }
                RenderTask::Narration(narration) => {
                    let gateway = self.generator.as_ref().ok_or(Failure::Unavailable("no generator".into()))?;
                    let of =
                        VideoScope { customer_id: &scope.customer_id, job_id: &scope.job_id, remote: &scope.remote };
                    let to = NarrationOutput { store: self.store.as_ref(), key: output_key, file: &output };
                    gateway.narrate(&of, narration, &to, progress, cancel).await.map(|(_, parts)| parts)
                }
            }
        };
        // A narration's parts, kept until its joined WAV is stored (none for the other tasks).
        let parts = match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(result) => result?,
            Err(_) => return Err(Failure::Failed(format!("the render took longer than {:?}", self.settings.timeout))),
        };
        progress.send_modify(|p| p.stage = "storing");
        let media = match task {
            // A WAV the host wrote itself: its length is its samples.
            RenderTask::Narration(_) => OutputMedia::of_wav(&output)?,
            _ => self.describe_output(&output).await?,
        };
        let size = self
            .store
            .put_file(output_key, &output, task.content_type())
            .await
            .map_err(|e| Failure::Failed(format!("storage: {e}")))?;
        crate::providers::delete_narration_parts(self.store.as_ref(), &scope.render_id, parts).await;
        let url = self.store.public_url(output_key).await;
        let mut metadata = serde_json::json!({
            "backend": backend, "duration_seconds": media.seconds, "width": media.width, "height": media.height,
            "fps": media.fps, "size_bytes": size, "has_audio": media.has_audio,
        });
        let (cost_nusd, provider_model) = match task {
            // Google bills the length asked for, whatever the clip's container says.
            RenderTask::Generation(video) => {
                metadata["provider"] = video.provider.clone().into();
                metadata["model"] = video.model.clone().into();
                (video.cost_nusd(), Some((video.provider.clone(), video.model.clone())))
            }
            RenderTask::Narration(narration) => {
                metadata["provider"] = narration.provider.clone().into();
                metadata["model"] = narration.model.clone().into();
                metadata["characters"] = narration.text.chars().count().into();
                metadata["parts"] = narration.parts().len().into();
                metadata["content_type"] = task.content_type().into();
                (narration.cost_nusd(), Some((narration.provider.clone(), narration.model.clone())))
            }
            _ => (crate::money::cost_from_usd(media.seconds / 60.0 * self.settings.usd_per_minute), None),
        };
        Ok(Rendered {
            result: RenderResult {
                render_id: scope.render_id.clone(),
                output_key: relative_key.to_string(),
                output_url: url,
                metadata: metadata.to_string(),
            },
            cost_nusd,
            seconds: media.seconds,
            bytes: size,
            provider_model,
        })
    }

    async fn render_spec(
        &self,
        scope: &RenderScope,
        spec: &serde_json::Value,
        dir: &Path,
        output: &Path,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let spec = RenderSpec::parse(&spec.to_string(), self.settings.max_seconds)
            .map_err(|e| Failure::Invalid(format!("spec.{e}")))?;
        progress.send_modify(|p| p.stage = "fetching");
        let ffmpeg = &self.settings.ffmpeg;
        let limits = self.settings.process_limits(true);
        let mut bg_paths = Vec::new();
        let mut bg_probes = Vec::new();
        for (i, track) in spec.backgrounds.iter().enumerate() {
            let field = format!("spec.backgrounds[{i}].src");
            let path = dir.join(format!("bg{i}"));
            self.sources.fetch(scope, &track.src, &field, &path).await?;
            bg_probes.push(ffmpeg.probe(&path, &field, limits).await?);
            bg_paths.push(path);
        }
        let mut audio_paths = Vec::new();
        let mut audio_probes: Vec<Probe> = Vec::new();
        for (i, track) in spec.audio.iter().enumerate() {
            let field = format!("spec.audio[{i}].src");
            let path = dir.join(format!("audio{i}"));
            self.sources.fetch(scope, &track.src, &field, &path).await?;
            audio_probes.push(ffmpeg.probe(&path, &field, limits).await?);
            audio_paths.push(path);
        }
        let timeline = timeline::resolve(&spec, &bg_probes, &audio_probes, self.settings.max_seconds)
            .map_err(|e| Failure::Invalid(format!("spec.{e}")))?;
        self.fits_timeout(timeline.duration, &spec)?;
        let bg: Vec<&Path> = bg_paths.iter().map(|p| p.as_path()).collect();
        let audio: Vec<&Path> = audio_paths.iter().map(|p| p.as_path()).collect();
        let args = timeline::ffmpeg_args(&spec, &timeline, &bg, &audio, output);
        progress.send_modify(|p| p.stage = "rendering");
        let started = std::time::Instant::now();
        ffmpeg.run(&args, timeline.duration, progress, cancel, limits).await?;
        let canvas = &spec.canvas;
        self.speed.observe(started.elapsed().as_secs_f64(), timeline.duration, canvas.width, canvas.height, canvas.fps);
        Ok(())
    }

    /// Refuse a spec whose render would outlast the render timeout at this host's measured
    /// speed: it could never finish.
    fn fits_timeout(&self, seconds: f64, spec: &RenderSpec) -> Result<(), Failure> {
        self.too_slow(seconds, spec)
            .map_or(Ok(()), |problem| Err(Failure::Invalid(format!("spec.duration: {problem}"))))
    }

    fn too_slow(&self, seconds: f64, spec: &RenderSpec) -> Option<String> {
        let canvas = &spec.canvas;
        let estimate = self.speed.estimate(seconds, canvas.width, canvas.height, canvas.fps);
        let timeout = self.settings.timeout.as_secs_f64();
        (estimate > timeout).then(|| {
            format!(
                "{seconds} s of {}×{} at {} fps takes about {estimate:.0} s to render on this host (measured), \
                 longer than the render timeout of {timeout:.0} s (VIDFARM_RENDER_TIMEOUT_SECS)",
                canvas.width, canvas.height, canvas.fps
            )
        })
    }

    /// Check a spec a customer sent before any job exists (an operation whose input schema
    /// marks it `x-vidfarm-render-spec`): its shape and limits, and, when it states its
    /// length, that this host can render it within the timeout. `Err((field, problem))`, the
    /// field relative to the spec. (A length decided by its media is checked when the render
    /// has fetched them.)
    pub fn preflight_spec(&self, spec: &serde_json::Value) -> Result<(), (String, String)> {
        let spec = RenderSpec::parse(&spec.to_string(), self.settings.max_seconds).map_err(|e| (e.field, e.problem))?;
        match spec.duration.and_then(|seconds| self.too_slow(seconds, &spec)) {
            Some(problem) => Err(("duration".into(), problem)),
            None => Ok(()),
        }
    }

    /// Input props may name stored images as `job:<key>`, `workspace:<key>`, the host's own
    /// signed URLs, or any other http(s) URL. Locally every one of them is fetched by the host
    /// (other URLs under the outbound policy: public addresses only in production, DNS pinned,
    /// streamed and capped at 64 MiB in all) and reaches the browser as a `data:` URL, so
    /// Chromium — whose own network stack Remotion launches with no proxy and private-network
    /// checks off — never fetches anything a customer named. On Lambda (where props over ~194
    /// KB go through S3) `job:`/`workspace:` names become the store's signed URLs, which AWS
    /// must reach, and other URLs must pass the outbound policy as they are.
    async fn inline_assets(
        &self,
        scope: &RenderScope,
        props: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        const BUDGET: usize = 64 << 20;
        let lambda = self.settings.remotion.as_ref().is_some_and(|r| r.mode != super::RemotionMode::Local);
        let mut refs = Vec::new();
        let own_url =
            |s: &str| self.sources.signer.as_ref().is_some_and(|signer| signer.own_object(s, now_s()).is_some());
        collect_refs(
            props,
            &|s, field| is_ref(s) || (is_remote(s) && (is_media_field(field) || own_url(s))),
            &mut refs,
        );
        let mut inlined = std::collections::HashMap::new();
        let mut total = 0;
        for reference in refs {
            if inlined.contains_key(&reference) {
                continue;
            }
            if lambda && !is_ref(&reference) {
                // The host's own signed URLs stay as they are (AWS fetches them); any other URL
                // must pass the outbound policy before AWS is asked to fetch it.
                if !own_url(&reference) {
                    crate::outbound::check_destination(&reference, self.settings.allow_private_sources)
                        .await
                        .map_err(|reason| Failure::Invalid(format!("input-props `{reference}`: {reason}")))?;
                }
                continue;
            }
            if lambda {
                let (prefix, key) = match reference.split_once(':') {
                    Some(("job", key)) => (&scope.artifact_prefix, key),
                    Some((_, key)) => (&scope.workspace_prefix, key),
                    None => continue,
                };
                let full = crate::storage::keys::resolve(prefix, key)
                    .map_err(|r| Failure::Invalid(format!("input-props `{reference}`: {r}")))?;
                let url = self.store.public_url(&full).await.ok_or_else(|| {
                    Failure::Invalid(format!(
                        "input-props `{reference}`: the store gives no URL to reach it from Lambda"
                    ))
                })?;
                inlined.insert(reference, url);
                continue;
            }
            let dir =
                tempfile::tempdir_in(&self.settings.work_dir).map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
            let path = dir.path().join("asset");
            let field = format!("input-props `{reference}`");
            let left = (BUDGET - total) as u64;
            self.sources.fetch_capped(scope, &reference, &field, &path, left).await.map_err(|e| match e {
                Failure::Invalid(m) if m.contains("larger than") => {
                    Failure::Invalid("input-props: the referenced files exceed 64 MiB".into())
                }
                other => other,
            })?;
            let bytes = tokio::fs::read(&path).await.map_err(|e| Failure::Failed(format!("work dir: {e}")))?;
            total += bytes.len();
            let url = format!(
                "data:{};base64,{}",
                sniff(&bytes),
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes)
            );
            inlined.insert(reference, url);
        }
        let mut props = props.clone();
        replace_refs(&mut props, &inlined);
        Ok(props)
    }

    async fn describe_output(&self, output: &Path) -> Result<OutputMedia, Failure> {
        let out = super::process::confined(&self.settings.ffmpeg.ffprobe, self.settings.process_limits(true), &[])
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type,width,height,r_frame_rate",
                "-of",
                "json",
            ])
            .arg(output)
            .output()
            .await
            .map_err(|e| Failure::Failed(format!("cannot run ffprobe: {e}")))?;
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let streams = info["streams"].as_array().cloned().unwrap_or_default();
        let video = streams.iter().find(|s| s["codec_type"] == "video");
        let Some(video) = video.filter(|_| out.status.success()) else {
            return Err(Failure::Failed("the renderer produced no playable video".into()));
        };
        let fps = video["r_frame_rate"].as_str().and_then(|r| {
            let (n, d) = r.split_once('/')?;
            Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?.max(1.0))
        });
        Ok(OutputMedia {
            seconds: info["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
            width: video["width"].as_u64().unwrap_or(0),
            height: video["height"].as_u64().unwrap_or(0),
            fps: fps.unwrap_or(0.0),
            has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
        })
    }
}

struct OutputMedia {
    seconds: f64,
    width: u64,
    height: u64,
    fps: f64,
    has_audio: bool,
}

impl OutputMedia {
    /// A 24 kHz 16-bit mono WAV with a 44-byte header (as `providers::narration_runs` writes).
    fn of_wav(path: &Path) -> Result<Self, Failure> {
        let bytes = std::fs::metadata(path).map_err(|e| Failure::Failed(format!("the narration: {e}")))?.len();
        let seconds = bytes.saturating_sub(44) as f64 / 48_000.0;
        Ok(Self { seconds, width: 0, height: 0, fps: 0.0, has_audio: true })
    }
}

/// An http(s) URL: the host fetches it (locally) or checks it (Lambda), never passes it blind.
fn is_remote(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn is_ref(text: &str) -> bool {
    text.strip_prefix("job:")
        .or_else(|| text.strip_prefix("workspace:"))
        .is_some_and(|k| !k.is_empty() && !k.contains(' '))
}

fn now_s() -> i64 {
    crate::db::now_ms() / 1000
}

/// The strings of `value` that name objects to fetch (`wanted`, given the string and the
/// name of the field it is in, or of the list it is an item of).
fn collect_refs(value: &serde_json::Value, wanted: &dyn Fn(&str, &str) -> bool, refs: &mut Vec<String>) {
    fn walk(value: &serde_json::Value, field: &str, wanted: &dyn Fn(&str, &str) -> bool, refs: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if wanted(s, field) => refs.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, field, wanted, refs)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, wanted, refs)),
            _ => {}
        }
    }
    walk(value, "", wanted, refs)
}

/// A field whose URL a composition loads as media (`imageUrl`, `src`, `backgroundVideo`, …),
/// as the operator's compositions name them; a URL in any other field (a caption that reads
/// like a link) is text and is left alone.
fn is_media_field(field: &str) -> bool {
    let field = field.to_ascii_lowercase();
    ["url", "src", "image", "video", "audio", "poster", "font", "background", "logo", "music", "voice"]
        .iter()
        .any(|part| field.contains(part))
}

fn replace_refs(value: &mut serde_json::Value, inlined: &std::collections::HashMap<String, String>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(url) = inlined.get(s.as_str()) {
                *s = url.clone();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_refs(v, inlined)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| replace_refs(v, inlined)),
        _ => {}
    }
}

/// The media type of an image, clip or sound from its first bytes.
fn sniff(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => "video/mp4",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => "audio/wav",
        [b'I', b'D', b'3', ..] | [0xFF, 0xFB | 0xF3 | 0xF2, ..] => "audio/mpeg",
        _ => "application/octet-stream",
    }
}
