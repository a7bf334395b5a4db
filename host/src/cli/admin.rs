//! Operator commands: `customers`, `keys`, `db backup|restore|migrate|copy` (the last two in
//! `database`). They open the database directly, so they work while the server runs (SQLite
//! WAL lets both write).

use super::{failure, usage};
use crate::db::Db;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Create a customer and its first API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show or set a customer's fair-share caps (a number, or `none` for the host default).
    Limits(super::customer_limits::LimitsArgs),
    /// Give a customer a dashboard sign-in: an email and a password read from stdin.
    Password(super::accounts::PasswordArgs),
    /// Let an email sign up on the dashboard (`VIDFARM_SIGNUP=invite`).
    Invite(super::accounts::InviteArgs),
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create another API key for a customer (shown once).
    Create {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List a customer's keys (prefixes only).
    List {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by id.
    Revoke {
        key_id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum BillingCommand {
    /// Add prepaid credit to a customer (who then cannot be charged past it).
    Credit {
        customer: String,
        usd: f64,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Set a customer's monthly cap (`none` removes it) and/or margin (`none`: host default).
    Terms {
        customer: String,
        #[arg(long)]
        monthly_cap: Option<String>,
        #[arg(long)]
        margin: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// A customer's limits, charges and what may still be charged.
    Show {
        customer: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// A consistent online backup of the database into FILE, verified (integrity check).
    Backup {
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Put a backup back as the database of an empty data dir (after the integrity check).
    Restore {
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Bring the configured database to this binary's schema and print its version.
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write the objects kept in the database (those of at most 16 KiB) as files under DIR, at
    /// their keys, as the others are in `<data dir>/objects/`: before moving objects to S3
    /// (stop the hosts first).
    ExportObjects {
        /// Where the files go (default: `<data dir>/objects`, beside the larger objects)
        #[arg(long)]
        to: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Copy every row of a SQLite database into a new, empty PostgreSQL one (stop the hosts first).
    Copy {
        /// The SQLite file: sqlite://data/vidfarm.sqlite
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: postgres://user:password@host/db (created if missing)
        #[arg(long)]
        to: String,
    },
}

pub(super) async fn open(data_dir: Option<PathBuf>) -> Result<Db, ExitCode> {
    let config = super::platform::config(data_dir, None).map_err(usage)?;
    std::fs::create_dir_all(&config.data_dir).map_err(failure)?;
    config.open_database().await.map_err(failure)
}

use crate::api::issue_api_key as new_key;

pub async fn customers(command: CustomersCommand) -> ExitCode {
    let (name, data_dir) = match command {
        CustomersCommand::Create { name, data_dir } => (name, data_dir),
        CustomersCommand::Limits(args) => return super::customer_limits::run(args).await,
        CustomersCommand::Password(args) => return super::accounts::password(args).await,
        CustomersCommand::Invite(args) => return super::accounts::invite(args).await,
    };
    if name.trim().is_empty() {
        return usage("--name must not be empty");
    }
    let db = match open(data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let id = format!("cus_{}", uuid::Uuid::now_v7().simple());
    let result = async {
        db.create_customer(&id, name.trim()).await?;
        new_key(&db, &id, Some("default".into())).await
    }
    .await;
    match result {
        Ok(key) => {
            println!("{}", json!({ "customer_id": id, "api_key": key }));
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}

pub async fn keys(command: KeysCommand) -> ExitCode {
    let data_dir = match &command {
        KeysCommand::Create { data_dir, .. }
        | KeysCommand::List { data_dir, .. }
        | KeysCommand::Revoke { data_dir, .. } => data_dir.clone(),
    };
    let db = match open(data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match command {
        KeysCommand::Create { customer, label, .. } => {
            match db.customer(&customer).await {
                Ok(Some(_)) => {}
                Ok(None) => return usage(format!("no customer `{customer}`")),
                Err(e) => return failure(e),
            }
            match new_key(&db, &customer, label).await {
                Ok(key) => {
                    println!("{}", json!({ "customer_id": customer, "api_key": key }));
                    ExitCode::SUCCESS
                }
                Err(e) => failure(e),
            }
        }
        KeysCommand::List { customer, .. } => match db.api_keys(&customer).await {
            Ok(keys) => {
                println!("{}", json!({ "customer_id": customer, "keys": keys }));
                ExitCode::SUCCESS
            }
            Err(e) => failure(e),
        },
        KeysCommand::Revoke { key_id, .. } => match db.revoke_api_key(&key_id).await {
            Ok(true) => {
                println!("{}", json!({ "revoked": key_id }));
                ExitCode::SUCCESS
            }
            Ok(false) => usage(format!("no live key `{key_id}`")),
            Err(e) => failure(e),
        },
    }
}

pub async fn db(command: DbCommand) -> ExitCode {
    match command {
        DbCommand::Backup { file, data_dir } => {
            if file.exists() {
                return usage(format!("{} exists; backups never overwrite", file.display()));
            }
            let db = match open(data_dir).await {
                Ok(db) => db,
                Err(code) => return code,
            };
            if let Err(e) = db.backup(&file).await {
                return failure(e);
            }
            match crate::backup::verify(&file).await {
                Ok(verified) => {
                    println!("{}", json!({ "backup": file, "verified": verified }));
                    ExitCode::SUCCESS
                }
                Err(e) => failure(e),
            }
        }
        DbCommand::Restore { file, data_dir } => {
            let config = match super::platform::config(data_dir, None) {
                Ok(config) => config,
                Err(e) => return usage(e),
            };
            if config.database_url.is_some() {
                return usage(
                    "`vidfarm db restore` restores a SQLite backup; restore PostgreSQL with pg_restore or psql",
                );
            }
            match crate::backup::restore(&file, &config.database_path()).await {
                Ok(verified) => {
                    println!("{}", json!({ "restored": file, "into": config.database_path(), "verified": verified }));
                    ExitCode::SUCCESS
                }
                Err(crate::backup::BackupError::Refused(why)) => usage(why),
                Err(e) => failure(e),
            }
        }
        DbCommand::Migrate { data_dir } => super::database::migrate(data_dir).await,
        DbCommand::Copy { from, to } => super::database::copy(&from, &to).await,
        DbCommand::ExportObjects { to, data_dir } => super::database::export_objects(to, data_dir).await,
    }
}

pub async fn billing(command: BillingCommand) -> ExitCode {
    let (customer, data_dir) = match &command {
        BillingCommand::Credit { customer, data_dir, .. }
        | BillingCommand::Terms { customer, data_dir, .. }
        | BillingCommand::Show { customer, data_dir } => (customer.clone(), data_dir.clone()),
    };
    let db = match open(data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    if let BillingCommand::Terms { monthly_cap, margin, .. } = &command {
        let amount = |flag: &str, v: &Option<String>| -> Result<Option<Option<f64>>, String> {
            // `--monthly-cap` in USD, `--margin` a multiplier; both checked here.
            match v.as_deref() {
                None => Ok(None),
                Some("none") => Ok(Some(None)),
                Some(text) => match text.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(Some(x))),
                    _ => Err(format!("--{flag} must be a non-negative number or `none`, not `{text}`")),
                },
            }
        };
        let (cap, margin) = match (amount("monthly-cap", monthly_cap), amount("margin", margin)) {
            (Ok(c), Ok(m)) => (c, m),
            (Err(e), _) | (_, Err(e)) => return usage(e),
        };
        if margin.flatten().is_some_and(|m| m < 1.0) {
            return usage("--margin below 1.0 would charge less than cost");
        }
        let cap = cap.map(|c| c.map(|usd| crate::money::from_usd(usd).unwrap_or(crate::money::UNLIMITED)));
        match db.set_billing_terms(&customer, cap, margin).await {
            Ok(true) => {}
            Ok(false) => return usage(format!("no customer `{customer}`")),
            Err(e) => return failure(e),
        }
    }
    if let BillingCommand::Credit { usd, .. } = command {
        let Some(nusd) = crate::money::from_usd(usd).filter(|n| *n > 0) else {
            return usage("the credit must be a positive amount of USD");
        };
        match db.add_credit(&customer, nusd).await {
            Ok(true) => {}
            Ok(false) => return usage(format!("no customer `{customer}`")),
            Err(e) => return failure(e),
        }
    }
    match db.billing_summary(&customer).await {
        Ok(Some(s)) => {
            let mut shown = crate::api::views::limits(&s);
            shown["customer_id"] = json!(customer);
            println!("{shown}");
            ExitCode::SUCCESS
        }
        Ok(None) => usage(format!("no customer `{customer}`")),
        Err(e) => failure(e),
    }
}
