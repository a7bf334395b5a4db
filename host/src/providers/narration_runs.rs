//! A narration from its first part to one stored WAV, run by the render worker while its job
//! waits (suspended, no instance). No part is ever spoken, or paid for, twice:
//!
//! 1. Before a part's request the row's `external_id` says so (`submitting`), under this
//!    attempt's lease. A request is never interrupted (a shutdown waits for it, heartbeating)
//!    and never sent again after an answer that may mean ElevenLabs spoke it (a timeout, a
//!    broken-off answer, a gateway's 502/504).
//! 2. Once a part's audio is back its price is noted on the hold (from then on it is paid
//!    for), the part is stored under a host-only prefix, and the row counts it `done`.
//!
//! An attempt after a shutdown goes on from the first part not done; one that finds a request
//! in flight (the host died mid-request) fails rather than risk paying for that part again.
//! The parts are deleted once the joined WAV is stored, or when the narration fails.

use super::narration::NarrationTask;
use super::video_runs::{KeyWanted, VideoScope, database, describe, sleep_or_cancel};
use super::wire::CallError;
use super::{Provider, ProviderRouter, provider_name};
use crate::capabilities::ObjectStore;
use crate::db::holds::Actual;
use crate::db::key_leases::KeyOutcome;
use crate::render::{Failure, Progress, RowLease};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the row's `external_id` holds for a narration.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Narrated {
    /// Parts spoken and stored (see [`part_key`]).
    done: usize,
    /// Part `done` has (or may have) a request in flight.
    submitting: bool,
    /// ElevenLabs' ids of the last parts, each with the key that made it: the next request
    /// names those of its own key (ids are per account) to carry the voice on.
    stitches: Vec<Stitch>,
    /// The part size the text was cut with when the narration began (a later host version
    /// with another size goes on with the same parts).
    #[serde(default)]
    part_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stitch {
    key: String,
    request_id: String,
}

/// The most earlier requests a stitched request may name (ElevenLabs' limit).
const MAX_PREVIOUS_REQUESTS: usize = 3;

/// The largest part read back from storage (2,000 characters at the slowest speech).
const MAX_PART_BYTES: u64 = 64 << 20;

/// Where the parts and the output go.
pub struct NarrationOutput<'a> {
    pub store: &'a dyn ObjectStore,
    /// The output's full key.
    pub key: &'a str,
    /// The local file the WAV is joined into.
    pub file: &'a Path,
}

/// Where part `n` of the render `render_id` is kept until the WAV is joined and stored: outside
/// every job's prefix, so no template can read, overwrite or count on it.
pub fn part_key(render_id: &str, n: usize) -> String {
    format!("narration-parts/{render_id}/part-{n:04}")
}

/// Delete the first `count` parts of `render_id` (gone already is fine).
pub async fn delete_parts(store: &dyn ObjectStore, render_id: &str, count: usize) {
    for n in 0..count {
        if let Err(e) = store.delete(&part_key(render_id, n)).await {
            tracing::warn!(error = %e, part = n, "could not delete a narration part");
        }
    }
}

impl ProviderRouter {
    /// Speak `task` part by part (resuming after the parts an earlier attempt stored) and join
    /// the parts into one WAV at `output.file`; returns its seconds and how many parts it has
    /// (to delete once the WAV is stored). Progress stages: `speaking` (the fraction is parts
    /// done), `joining`.
    pub async fn narrate(
        &self,
        scope: &VideoScope<'_>,
        task: &NarrationTask,
        output: &NarrationOutput<'_>,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(f64, usize), Failure> {
        let row = scope.remote.row.as_ref().ok_or(Failure::Failed("a narration runs only on a queued row".into()))?;
        let mut state: Narrated = match &scope.remote.resume {
            Some(stored) => serde_json::from_str(stored)
                .map_err(|e| Failure::Failed(format!("the stored narration `{stored}` is unreadable: {e}")))?,
            None => Narrated::default(),
        };
        if state.part_chars == 0 {
            state.part_chars = super::narration::PART_CHARS;
        }
        let parts = task.parts_of(state.part_chars);
        if state.submitting {
            delete_parts(output.store, &row.render_id, state.done).await;
            return Err(Failure::Failed(format!(
                "an earlier attempt stopped while part {} of {} was being spoken, so ElevenLabs may have billed it; \
                 it is not spoken again so that it is never paid for twice",
                state.done + 1,
                parts.len()
            )));
        }
        if state.done == 0 {
            if let Some(refusal) = task.refusal() {
                return Err(Failure::Invalid(refusal));
            }
        } else {
            // The parts spoken before are paid for whatever happens next.
            self.note_parts_price(row, task, &parts[..state.done.min(parts.len())]).await;
        }
        while state.done < parts.len() {
            if cancel.is_cancelled() {
                return Err(Failure::Cancelled); // a shutdown: the next attempt goes on from here
            }
            progress.send_modify(|p| {
                p.stage = "speaking";
                p.fraction = 0.95 * state.done as f64 / parts.len() as f64;
            });
            let (pcm, stitch) = match self.speak_part(scope, row, task, &parts, &mut state, cancel).await {
                Ok(spoken) => spoken,
                // A shutdown keeps the parts for the next attempt; a cancelled job's are
                // deleted by the worker.
                Err(Failure::Cancelled) => return Err(Failure::Cancelled),
                Err(failure) => {
                    delete_parts(output.store, &row.render_id, state.done).await;
                    return Err(failure);
                }
            };
            if let Err(failure) = store_with_retries(output.store, &part_key(&row.render_id, state.done), pcm).await {
                delete_parts(output.store, &row.render_id, state.done).await;
                return Err(failure);
            }
            state.done += 1;
            state.submitting = false;
            state.stitches.extend(stitch);
            let keep_from = state.stitches.len().saturating_sub(MAX_PREVIOUS_REQUESTS);
            state.stitches.drain(..keep_from);
            if !self.store_state(row, &state).await? {
                return Err(Failure::Cancelled); // the job was cancelled meanwhile
            }
        }
        progress.send_modify(|p| {
            p.stage = "joining";
            p.fraction = 0.95;
        });
        let seconds = match join_parts(output, &row.render_id, parts.len()).await {
            Ok(seconds) => seconds,
            // The parts are gone only once an earlier attempt stored the joined WAV (it died
            // before recording the end): that WAV is the narration.
            Err(JoinError::PartMissing(n)) => {
                match output.store.get_to_file(output.key, output.file, MAX_WAV_BYTES).await {
                    Ok(bytes) => bytes.saturating_sub(44) as f64 / 48_000.0,
                    Err(_) => {
                        return Err(Failure::Failed(format!("spoken part {} of the narration is missing", n + 1)));
                    }
                }
            }
            Err(JoinError::Failed(failure)) => return Err(failure),
        };
        Ok((seconds, parts.len()))
    }

    /// Lease a key and speak part `state.done`, trying the customer's other keys on rate
    /// limits, bad keys and 500/503 answers as any call does, but never again once ElevenLabs
    /// may have spoken it. Its price is noted on the hold as soon as its audio is back.
    async fn speak_part(
        &self,
        scope: &VideoScope<'_>,
        row: &RowLease,
        task: &NarrationTask,
        parts: &[&str],
        state: &mut Narrated,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, Option<Stitch>), Failure> {
        let name = provider_name(Provider::Elevenlabs);
        let call = task.part_call(parts[state.done]);
        let (mut tried, mut failures) = (Vec::<String>::new(), 0u32);
        let waiting = Instant::now();
        loop {
            let wanted =
                KeyWanted { provider: Provider::Elevenlabs, model: &task.model, tried: &tried, since: waiting };
            let Some(lease) = self.lease_for_generation(scope, &wanted, cancel).await? else {
                tried.clear();
                sleep_or_cancel(self.backoff(failures), cancel).await?;
                continue;
            };
            let release = || self.db.release_key_lease(&lease.key_id, &lease.lease_token);
            let secret = self.leased_secret(&lease, name).await?;
            // Request ids belong to the account that made them: only this key's carry the voice on.
            let previous: Vec<String> = match task.stitches() {
                true => state.stitches.iter().filter(|s| s.key == lease.key_id).map(|s| s.request_id.clone()).collect(),
                false => Vec::new(),
            };
            state.submitting = true;
            if cancel.is_cancelled() || !self.store_state(row, state).await? {
                let _ = release().await;
                return Err(Failure::Cancelled);
            }
            // Not raced against cancel or shutdown: a part dropped here is paid for and lost.
            let error = match self.elevenlabs().speak_pcm(&secret, &call, &previous).await {
                Ok((pcm, request_id)) => {
                    self.note_parts_price(row, task, &parts[..=state.done]).await;
                    let usage = super::elevenlabs::characters(&call);
                    let cost_usd = super::pricing::cost_usd(Provider::Elevenlabs, &task.model, &usage);
                    let success = KeyOutcome::Success { input_tokens: 0, output_tokens: 0, cost_usd };
                    if let Err(e) = self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &success).await {
                        tracing::warn!(error = %e, "could not record the key's use for a narration part");
                    }
                    let stitch = request_id.map(|request_id| Stitch { key: lease.key_id.clone(), request_id });
                    return Ok((pcm, stitch));
                }
                Err(error) => error,
            };
            // Only an answer that says nothing was spoken may be tried again: a refusal (4xx:
            // ElevenLabs bills only audio it returns) or its own 500/503. A timeout, a broken-off
            // or empty 2xx, a gateway's 502/504 may hide a part spoken and billed.
            let spoke_nothing = match &error {
                CallError::RateLimited { .. } | CallError::Auth { .. } | CallError::Rejected { .. } => true,
                CallError::Transient { status, .. } => matches!(status, Some(500 | 503)),
                CallError::BadAnswer(_) => false,
            };
            if let CallError::BadAnswer(_) = &error {
                // A 2xx: ElevenLabs spoke it (and bills it), whatever reached us.
                self.note_parts_price(row, task, &parts[..=state.done]).await;
            }
            let detail = describe(&error);
            let (record, answer) = self.judge(name, &lease.source, error, &mut failures);
            self.db.finish_key_lease(&lease, scope.job_id, name, &task.model, &record).await.map_err(database)?;
            if !spoke_nothing {
                return Err(Failure::Failed(format!(
                    "part {} of {} of the narration failed after ElevenLabs may have spoken it ({detail}); it is not \
                     sent again so that it is never paid for twice",
                    state.done + 1,
                    parts.len()
                )));
            }
            state.submitting = false;
            self.store_state(row, state).await?;
            if let Some(answer) = answer {
                return Err(match answer {
                    crate::runtime::bindings::providers::ProviderError::InvalidRequest(m) => Failure::Invalid(m),
                    _ => Failure::Failed(detail),
                });
            }
            if let KeyOutcome::Failed { .. } = record {
                tried.push(lease.key_id.clone());
                sleep_or_cancel(self.backoff(failures), cancel).await?;
            }
        }
    }

    /// Write `state` on the row under this attempt's lease; false when the row is no longer
    /// this attempt's.
    async fn store_state(&self, row: &RowLease, state: &Narrated) -> Result<bool, Failure> {
        let text = serde_json::to_string(state).unwrap_or_default();
        self.write_row_state(row, &text, "the narration's progress").await
    }

    /// The parts spoken so far are paid for: their price is noted on the hold, so the job's
    /// end captures it even if the narration fails or is cancelled later.
    async fn note_parts_price(&self, row: &RowLease, task: &NarrationTask, spoken: &[&str]) {
        let metadata = serde_json::json!({ "parts": spoken.len(), "recorded_by": "host" }).to_string();
        let actual = Actual {
            cost_nusd: task.price_of(spoken),
            provider: Some("elevenlabs"),
            model: Some(&task.model),
            metadata: &metadata,
        };
        for wait in [0, 100, 500, 2_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self.db.note_hold_actual(&row.effect_key, &actual, self.margin).await {
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "could not note a narration's price on its hold"),
            }
        }
        tracing::error!(effect = %row.effect_key, "a narration's price could not be noted: it is charged only if it finishes");
    }
}

async fn store_with_retries(store: &dyn ObjectStore, key: &str, pcm: Vec<u8>) -> Result<(), Failure> {
    let mut last = String::new();
    for wait in [0, 200, 1_000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match store.put(key, pcm.clone(), "audio/L16;rate=24000").await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(Failure::Failed(format!("storing a spoken part: {last}")))
}

/// The largest narration WAV read back (50,000 characters at the slowest speech).
const MAX_WAV_BYTES: u64 = 1 << 31;

enum JoinError {
    /// Part `n` is not in the store.
    PartMissing(usize),
    Failed(Failure),
}

/// Join the stored parts (bare 24 kHz 16-bit mono PCM) into one WAV; returns its seconds.
async fn join_parts(output: &NarrationOutput<'_>, render_id: &str, parts: usize) -> Result<f64, JoinError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let failed = |e: std::io::Error| JoinError::Failed(Failure::Failed(format!("joining the narration: {e}")));
    let dir = output.file.parent().unwrap_or(Path::new("."));
    let mut wav = tokio::fs::File::create(output.file).await.map_err(failed)?;
    wav.write_all(&[0u8; 44]).await.map_err(failed)?;
    let mut data_bytes = 0u64;
    for n in 0..parts {
        let part = dir.join(format!("part-{n}"));
        match output.store.get_to_file(&part_key(render_id, n), &part, MAX_PART_BYTES).await {
            Ok(_) => {}
            Err(crate::capabilities::StoreError::NotFound(_)) => return Err(JoinError::PartMissing(n)),
            Err(e) => {
                return Err(JoinError::Failed(Failure::Failed(format!("reading spoken part {}: {e}", n + 1))));
            }
        }
        let file = tokio::fs::File::open(&part).await.map_err(failed)?;
        // Whole samples only: a part's odd byte would shift every sample after it.
        let len = file.metadata().await.map_err(failed)?.len() & !1;
        data_bytes += tokio::io::copy(&mut tokio::io::AsyncReadExt::take(file, len), &mut wav).await.map_err(failed)?;
        tokio::fs::remove_file(&part).await.map_err(failed)?;
    }
    let too_large = || JoinError::Failed(Failure::Failed("the narration is larger than a WAV holds".into()));
    let data = u32::try_from(data_bytes).ok().filter(|d| *d <= u32::MAX - 36).ok_or_else(too_large)?;
    let mut header = crate::capabilities::SpeechAudio::from_pcm16(&[], 24_000, 1).wav;
    header[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    header[40..44].copy_from_slice(&data.to_le_bytes());
    wav.rewind().await.map_err(failed)?;
    wav.write_all(&header).await.map_err(failed)?;
    wav.sync_all().await.map_err(failed)?;
    Ok(data_bytes as f64 / 48_000.0)
}
