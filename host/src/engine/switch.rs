//! An operator's switch of a template's active version (activate or roll back), as the admin
//! API makes it: under the registry's turn, so two switches never both start from the same
//! active version; then followed at once by this host, and switched back if this host refuses
//! the version. The turn lasts the registry's reads and writes only, not the load (compiling a
//! JS or Python component takes seconds), so one switch does not hold up every other.

use super::catalog::{Catalog, CatalogError};
use super::publish::{REGISTRY_TURN, REGISTRY_TURN_WAIT};
use crate::db::{Db, DbError, signals::Signal};
use vidfarm_registry::{ActivationRecord, RegistryError};

/// Which way to switch.
pub enum Switch {
    /// To this published version, newer than the active one.
    Activate(String),
    /// Back to the version active before the last switch.
    Rollback,
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("another switch has held the registry for {:?}; try again", REGISTRY_TURN_WAIT)]
    Busy,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Database(#[from] DbError),
    /// This host refused the version switched to; `switched_back` says where the registry
    /// points now, or why it was not switched back.
    #[error("{template_id}@{} was refused: {error}", .record.to)]
    Refused {
        template_id: String,
        record: ActivationRecord,
        error: CatalogError,
        switched_back: Result<String, String>,
    },
}

/// Make the switch and follow it. Run it to the end (spawned, not in a request's future that a
/// client can drop half-way): stopped between the switch and the switch back, it would leave
/// the registry pointing at a version the hosts refuse.
pub async fn switch(
    db: &Db,
    catalog: &Catalog,
    template_id: &str,
    switch: Switch,
    actor: &'static str,
) -> Result<ActivationRecord, SwitchError> {
    let record = {
        let _turn = db.take_turn(REGISTRY_TURN, REGISTRY_TURN_WAIT).await?.ok_or(SwitchError::Busy)?;
        let id = template_id.to_string();
        catalog
            .blocking(move |registry| match switch {
                Switch::Activate(version) => registry.activate(&id, &version, actor),
                Switch::Rollback => registry.rollback(&id, actor),
            })
            .await?
    };
    // This version, whatever another switch did since; then serve what the registry says.
    let refused = match catalog.load_version(template_id, &record.to).await {
        Ok(_) => None,
        Err(error) => Some((error, switch_back(db, catalog, template_id, &record).await)),
    };
    catalog.sync().await;
    db.announce(Signal::Registry);
    let Some((error, switched_back)) = refused else {
        return Ok(record);
    };
    if let Err(problem) = &switched_back {
        tracing::error!(template = template_id, version = %record.to, %problem, "a refused version was not switched back");
    }
    Err(SwitchError::Refused { template_id: template_id.to_string(), record, error, switched_back })
}

/// Point the registry back at the version this host serves (which it has verified), under the
/// turn again and only if it still points at the refused version: what it points at after.
async fn switch_back(
    db: &Db,
    catalog: &Catalog,
    template_id: &str,
    record: &ActivationRecord,
) -> Result<String, String> {
    let Some(serving) = catalog.active_version(template_id) else {
        return Err("this host serves no earlier version of the template to go back to".into());
    };
    let turn = db.take_turn(REGISTRY_TURN, REGISTRY_TURN_WAIT).await.map_err(|e| format!("the database: {e}"))?;
    let _turn = turn.ok_or("another switch held the registry; it decides what is active")?;
    let (id, refused) = (template_id.to_string(), record.to.clone());
    catalog
        .blocking(move |registry| {
            let active = registry.active(&id)?;
            match active {
                Some(active) if active == refused => registry
                    .revert(&id, &serving, "admin-api:revert")
                    .map(|back| format!("switched back to {}", back.to)),
                Some(other) => Ok(format!("another switch came in between: the registry points at {other}")),
                None => Ok("the registry has no active version".into()),
            }
        })
        .await
        .map_err(|e| e.to_string())
}
