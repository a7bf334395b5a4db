//! `vidfarm provider-keys add|list|pause|resume|remove`: customers' AI provider keys, for
//! operators. Secrets are read from stdin (or `--secret-env`), never from a flag that would
//! land in shell history, and are encrypted with the master key before they are stored.

use super::{failure, usage};
use crate::config::Environment;
use crate::db::Db;
use crate::db::provider_keys::ProviderKeyPatch;
use crate::providers::MasterKey;
use crate::providers::keys::{self, KeyInput};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ProviderKeysCommand {
    /// Add a key for a customer; the secret is read from stdin unless --secret-env names a variable.
    Add {
        #[arg(long)]
        customer: String,
        /// openai, gemini, openrouter, perplexity or elevenlabs.
        #[arg(long)]
        provider: String,
        /// An environment variable holding the secret.
        #[arg(long)]
        secret_env: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// Higher weights are preferred among keys used equally recently (1–1000).
        #[arg(long)]
        weight: Option<i64>,
        /// Restrict the key to these models (repeatable); none: every model.
        #[arg(long = "model")]
        models: Vec<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// A customer's keys (never the secrets).
    List {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Stop leasing a key.
    Pause {
        key_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Lease a paused or invalid key again.
    Resume {
        key_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Delete a key.
    Remove {
        key_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(command: ProviderKeysCommand) -> ExitCode {
    use ProviderKeysCommand::*;
    let data_dir = match &command {
        Add { data_dir, .. } | List { data_dir, .. } | Pause { data_dir, .. } => data_dir.clone(),
        Resume { data_dir, .. } | Remove { data_dir, .. } => data_dir.clone(),
    };
    let config = match super::platform::config(data_dir, None) {
        Ok(config) => config,
        Err(e) => return usage(e),
    };
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        return failure(e);
    }
    let db = match config.open_database().await {
        Ok(db) => db,
        Err(e) => return failure(e),
    };
    match command {
        Add { customer, provider, secret_env, label, weight, models, .. } => {
            let master = match MasterKey::load(
                config.providers.master_key.as_deref(),
                config.env == Environment::Production,
                &config.data_dir.join("master.key"),
            ) {
                Ok(key) => key,
                Err(e) => return usage(e),
            };
            let secret = match read_secret(secret_env.as_deref()) {
                Ok(secret) => secret,
                Err(e) => return usage(e),
            };
            match db.customer(&customer).await {
                Ok(Some(_)) => {}
                Ok(None) => return usage(format!("no customer `{customer}`")),
                Err(e) => return failure(e),
            }
            let input = match KeyInput::new(&provider, &secret, label, weight, models) {
                Ok(input) => input,
                Err((field, problem)) => return usage(format!("{field} {problem}")),
            };
            match input.store(&db, &master, &customer).await {
                Ok(id) => show(&db, &id).await,
                Err(e) => failure(e),
            }
        }
        List { customer, .. } => match db.provider_keys(Some(&customer)).await {
            Ok(rows) => {
                println!(
                    "{}",
                    json!({ "customer_id": customer, "keys": rows.iter().map(keys::view).collect::<Vec<_>>() })
                );
                ExitCode::SUCCESS
            }
            Err(e) => failure(e),
        },
        Pause { key_id, .. } => set_status(&db, &key_id, "paused").await,
        Resume { key_id, .. } => set_status(&db, &key_id, "active").await,
        Remove { key_id, .. } => {
            let owner = match db.provider_key_by_id(&key_id).await {
                Ok(Some(row)) => row.customer_id,
                Ok(None) => return usage(format!("no provider key `{key_id}`")),
                Err(e) => return failure(e),
            };
            match db.delete_provider_key(owner.as_deref(), &key_id).await {
                Ok(_) => {
                    println!("{}", json!({ "removed": key_id }));
                    ExitCode::SUCCESS
                }
                Err(e) => failure(e),
            }
        }
    }
}

fn read_secret(env: Option<&str>) -> Result<String, String> {
    if let Some(name) = env {
        return std::env::var(name).map_err(|_| format!("--secret-env {name}: the variable is not set"));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| format!("reading the secret from stdin: {e}"))?;
    Ok(line.trim().to_string())
}

async fn set_status(db: &Db, key_id: &str, status: &str) -> ExitCode {
    let owner = match db.provider_key_by_id(key_id).await {
        Ok(Some(row)) => row.customer_id,
        Ok(None) => return usage(format!("no provider key `{key_id}`")),
        Err(e) => return failure(e),
    };
    let patch = ProviderKeyPatch { status: Some(status.into()), ..Default::default() };
    match db.update_provider_key(owner.as_deref(), key_id, patch).await {
        Ok(_) => show(db, key_id).await,
        Err(e) => failure(e),
    }
}

async fn show(db: &Db, key_id: &str) -> ExitCode {
    match db.provider_key_by_id(key_id).await {
        Ok(Some(row)) => {
            println!("{}", keys::view(&row));
            ExitCode::SUCCESS
        }
        Ok(None) => usage(format!("no provider key `{key_id}`")),
        Err(e) => failure(e),
    }
}
