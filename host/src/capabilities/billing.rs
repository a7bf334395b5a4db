//! `billing`: template-recorded billable events, validated, journaled, then ledgered.

use super::HostState;
use crate::runtime::bindings::billing::{BillingError, BillingEvent, Host};

impl Host for HostState {
    async fn record(&mut self, event: BillingEvent) -> wasmtime::Result<Result<(), BillingError>> {
        self.check_cancelled()?;
        if let Err(reason) = validate(&event) {
            return Ok(Err(BillingError::Invalid(reason)));
        }
        // A charge is applied once per (job, effect number), even if a crash or a shutdown
        // lands between writing it and journaling it.
        let seq = self.journal.next_seq();
        self.effect("billing.record", event, move |caps, job, event| async move {
            caps.billing.record(&job, seq, &event).await.map(Ok)
        })
        .await
    }
}

/// The most metadata one charge carries: it is kept in the ledger and shown with every read
/// of the job's billing.
const MAX_METADATA_BYTES: usize = 16 << 10;

fn validate(event: &BillingEvent) -> Result<(), String> {
    if !event.cost_usd.is_finite() || event.cost_usd < 0.0 {
        return Err(format!("cost-usd must be a finite number >= 0, got {}", event.cost_usd));
    }
    if let Some(charge) = event.charge_usd
        && (!charge.is_finite() || charge < 0.0)
    {
        return Err(format!("charge-usd must be a finite number >= 0, got {charge}"));
    }
    if event.metadata.len() > MAX_METADATA_BYTES {
        return Err(format!("metadata must be at most {MAX_METADATA_BYTES} bytes, got {}", event.metadata.len()));
    }
    if !event.metadata.trim().is_empty() && serde_json::from_str::<serde_json::Value>(&event.metadata).is_err() {
        return Err("metadata must be JSON".into());
    }
    Ok(())
}
