//! `vidfarm customers password` and `vidfarm customers invite`: dashboard sign-in for
//! customers the CLI made, and invitations while `VIDFARM_SIGNUP=invite`.

use super::{failure, usage};
use crate::dashboard::session;
use clap::Args;
use serde_json::json;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct PasswordArgs {
    /// The customer (`cus_…`).
    customer: String,
    /// The email they sign in with.
    #[arg(long)]
    email: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct InviteArgs {
    /// The email that may sign up (once).
    email: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Give a customer an email and a password (read from the first line of stdin, so it never
/// appears in the shell's history or the process list).
pub async fn password(args: PasswordArgs) -> ExitCode {
    let email = match session::normalized_email(&args.email) {
        Ok(email) => email,
        Err(problem) => return usage(problem),
    };
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        return failure(e);
    }
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if let Some(problem) = session::password_problem(&password) {
        return usage(format!("{problem} (read from stdin)"));
    }
    let db = match super::admin::open(args.data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match db.customer(&args.customer).await {
        Ok(Some(_)) => {}
        Ok(None) => return usage(format!("no customer `{}`", args.customer)),
        Err(e) => return failure(e),
    }
    let hash = match session::hash_password(password).await {
        Ok(hash) => hash,
        Err(e) => return failure(e),
    };
    match db.set_account(&args.customer, &email, &hash).await {
        Ok(true) => {
            println!("{}", json!({ "customer_id": args.customer, "email": email }));
            ExitCode::SUCCESS
        }
        Ok(false) => usage(format!("`{email}` belongs to another customer")),
        Err(e) => failure(e),
    }
}

pub async fn invite(args: InviteArgs) -> ExitCode {
    let email = match session::normalized_email(&args.email) {
        Ok(email) => email,
        Err(problem) => return usage(problem),
    };
    let db = match super::admin::open(args.data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match db.invite(&email).await {
        Ok(()) => {
            println!("{}", json!({ "email": email, "invited": true }));
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}
