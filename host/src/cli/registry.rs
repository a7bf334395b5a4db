//! `vidfarm registry …`: keys, publishing, activation and auditing of signed templates.
//! Activations take effect on running hosts within their registry poll (250 ms by default).

use super::{failure, usage};
use crate::engine::CatalogError;
use crate::engine::publish::publish_with_bundle;
use crate::runtime::{Runtime, RuntimeConfig};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vidfarm_registry::{ArtifactStore, RegistryError, SigningKey, verify_artifact};

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Create a signing key; prints its public line for VIDFARM_TRUSTED_KEYS.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign and publish a component as the version its `describe` states.
    Publish {
        component: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The template's packed Remotion bundle (default: the `.remotion.tar` that
        /// `vidfarm template build` wrote beside the component, if there is one).
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Templates, their versions and the active one.
    List {
        template_id: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Make a version the one new jobs use.
    Activate {
        template_id: String,
        version: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Return to the version active before the last switch.
    Rollback {
        template_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a version as a host would: signature, trusted key, digest, world, describe.
    Verify {
        template_id: String,
        version: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Every publish, activation and rollback of a template.
    History {
        template_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

fn print(value: serde_json::Value) -> ExitCode {
    println!("{value}");
    ExitCode::SUCCESS
}

pub async fn run(command: RegistryCommand) -> ExitCode {
    if let RegistryCommand::Keygen { out } = &command {
        if out.exists() {
            return usage(format!("{} exists; keys are never overwritten", out.display()));
        }
        let key = SigningKey::generate();
        if let Err(e) = std::fs::write(out, key.to_file_text()) {
            return failure(format!("cannot write {}: {e}", out.display()));
        }
        return print(json!({ "key_id": key.key_id(), "public_key": key.public_line(), "key_file": out }));
    }
    let data_dir = match &command {
        RegistryCommand::Publish { data_dir, .. }
        | RegistryCommand::List { data_dir, .. }
        | RegistryCommand::Activate { data_dir, .. }
        | RegistryCommand::Rollback { data_dir, .. }
        | RegistryCommand::Verify { data_dir, .. }
        | RegistryCommand::History { data_dir, .. } => data_dir.clone(),
        RegistryCommand::Keygen { .. } => None,
    };
    let config = match super::platform::config(data_dir, None) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let store = match config.registry_store() {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let runtime = || {
        Runtime::new(RuntimeConfig {
            cache_dir: Some(config.data_dir.join("compiled")),
            cache_max_bytes: config.runtime.cache_max_bytes,
            ..RuntimeConfig::default()
        })
    };
    let result: Result<serde_json::Value, String> = match command {
        RegistryCommand::Keygen { .. } => unreachable!("handled above"),
        RegistryCommand::Publish { component, key, bundle, .. } => {
            let key = match std::fs::read_to_string(&key)
                .map_err(|e| e.to_string())
                .and_then(|t| SigningKey::from_file_text(&t).map_err(|e| e.to_string()))
            {
                Ok(k) => k,
                Err(e) => return usage(format!("--key {}: {e}", key.display())),
            };
            let Ok(bytes) = std::fs::read(&component) else {
                return usage(format!("cannot read {}", component.display()));
            };
            let beside = crate::devrun::build::bundle_path(&component);
            let bundle = match bundle.or_else(|| beside.is_file().then_some(beside)) {
                Some(path) => match std::fs::read(&path) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => return usage(format!("--bundle {}: {e}", path.display())),
                },
                None => None,
            };
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(e) => return failure(e),
            };
            publish_with_bundle(&runtime, &store, &key, &bytes, bundle.as_deref(), None, &key.key_id())
                .await
                .map(|v| json!(v))
                .map_err(|e| e.to_string())
        }
        RegistryCommand::List { template_id, .. } => {
            let ids = match template_id {
                Some(id) => Ok(vec![id]),
                None => store.templates(),
            };
            ids.and_then(|ids| {
                ids.into_iter()
                    .map(|id| {
                        Ok(json!({ "template_id": id, "active": store.active(&id)?, "versions": store.versions(&id)? }))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map(|list| json!({ "templates": list }))
            .map_err(|e| e.to_string())
        }
        RegistryCommand::Activate { template_id, version, .. } => {
            let _turn = match registry_turn(&config).await {
                Ok(turn) => turn,
                Err(e) => return failure(e),
            };
            let activated = store.activate(&template_id, &version, &actor()).map(|r| json!(r));
            tell_hosts(&config, activated.is_ok()).await;
            activated.map_err(|e| e.to_string())
        }
        RegistryCommand::Rollback { template_id, .. } => {
            let _turn = match registry_turn(&config).await {
                Ok(turn) => turn,
                Err(e) => return failure(e),
            };
            let rolled_back = store.rollback(&template_id, &actor()).map(|r| json!(r));
            tell_hosts(&config, rolled_back.is_ok()).await;
            rolled_back.map_err(|e| e.to_string())
        }
        RegistryCommand::History { template_id, .. } => store
            .history(&template_id)
            .map(|h| json!({ "template_id": template_id, "history": h }))
            .map_err(|e| e.to_string()),
        RegistryCommand::Verify { template_id, version, .. } => {
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(e) => return failure(e),
            };
            verify(&config, &store, &runtime, &template_id, &version).await.map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(value) => print(value),
        Err(e) => failure(e),
    }
}

/// The turn at the registry the hosts' switches take too (on the configured database: the
/// PostgreSQL server, or the file beside the SQLite database), so a switch here and one
/// through a host's admin API do not both read the same active version and write over each
/// other.
async fn registry_turn(config: &crate::config::Config) -> Result<Option<crate::db::Turn>, String> {
    use crate::engine::publish::{REGISTRY_TURN, REGISTRY_TURN_WAIT};
    let sqlite = format!("sqlite://{}", config.database_path().display());
    let url = config.database_url.as_deref().unwrap_or(&sqlite);
    match crate::db::take_turn_at(url, REGISTRY_TURN, REGISTRY_TURN_WAIT).await {
        Ok(Some(turn)) => Ok(Some(turn)),
        Ok(None) => Err(format!("another switch has held the registry for {REGISTRY_TURN_WAIT:?}; try again")),
        // No host has started on it yet, so none can be switching: go on, but say so, in case
        // the name is mistyped (the hosts would not be using this database at all).
        Err(e) if crate::db::no_such_database(&e) => {
            eprintln!("warning: {e}; switching without the hosts' turn (no host has created this database yet)");
            Ok(None)
        }
        // The turn's file beside a SQLite database cannot be made or locked (no such folder,
        // one this user may not write, a filesystem without locks): the host beside it goes
        // on without the file too, so go on, and say so.
        Err(e) if url.starts_with("sqlite://") => {
            eprintln!("warning: {e}; switching without the host's turn");
            Ok(None)
        }
        Err(e) => Err(format!("the database did not give the registry's turn: {e}")),
    }
}

/// Hosts sharing a PostgreSQL database hear of an activation at once instead of at their
/// next registry poll. Best effort: the activation is in the registry either way.
async fn tell_hosts(config: &crate::config::Config, changed: bool) {
    let Some(url) = config.database_url.as_deref().filter(|_| changed) else { return };
    if let Err(e) = crate::db::signals::notify_hosts(url, crate::db::signals::Signal::Registry).await {
        eprintln!("the hosts were not told at once (they follow at their next registry poll): {e}");
    }
}

async fn verify(
    config: &crate::config::Config,
    store: &ArtifactStore,
    runtime: &Runtime,
    template_id: &str,
    version: &str,
) -> Result<serde_json::Value, CatalogError> {
    let mut trusted = config.trusted_keys()?;
    // What a development host trusts besides: the key it publishes the built-ins with (derived
    // from the master key for a bucket, else the data dir's key file, if there is one yet).
    if config.env == crate::config::Environment::Development {
        if config.registry_s3.is_some() {
            // Read, never created here: without a master key no host derived the key yet.
            let file = config.data_dir.join("master.key");
            let master_key = crate::providers::MasterKey::existing(config.providers.master_key.as_deref(), &file)
                .map_err(|e| RegistryError::Invalid { what: "master key", problem: e.to_string() })?;
            if let Some(master_key) = master_key {
                trusted.add(&crate::engine::publish::development_key(config, &master_key)?);
            }
        } else if let Ok(text) = std::fs::read_to_string(config.data_dir.join("registry-dev.key")) {
            trusted.add(&SigningKey::from_file_text(&text)?);
        }
    }
    let (bytes, signed) = store.load(template_id, version)?;
    let manifest = verify_artifact(&bytes, &signed, &trusted)?;
    if manifest.bundle_digest.is_some() {
        vidfarm_registry::verify_bundle(&store.bundle(template_id, version)?, &manifest)?;
    }
    let loaded = runtime.load(Arc::from(bytes)).await?;
    crate::engine::check_describe(&manifest, &loaded.manifest)?;
    Ok(json!({
        "verified": true, "template_id": template_id, "version": version, "digest": manifest.digest,
        "bundle_digest": manifest.bundle_digest, "signer_key_id": manifest.signer_key_id,
    }))
}
