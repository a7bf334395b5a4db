//! `vidfarm customers limits <customer> [--max-concurrent-jobs N|none] …`: the operator's
//! setter for a customer's fair-share caps (the admin API's `PATCH
//! /admin/customers/:id/limits` sets the same). Prints the caps in force afterwards.

use super::{failure, usage};
use crate::db::customers::ShareChanges;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct LimitsArgs {
    customer: String,
    /// Jobs running at once.
    #[arg(long)]
    max_concurrent_jobs: Option<String>,
    /// Jobs created per minute (API and child jobs together).
    #[arg(long)]
    jobs_per_minute: Option<String>,
    /// Renders running at once.
    #[arg(long)]
    max_concurrent_renders: Option<String>,
    /// Webhook deliveries in flight at once.
    #[arg(long)]
    max_concurrent_deliveries: Option<String>,
    /// Bytes the customer may store (artifacts, uploads, render outputs).
    #[arg(long)]
    storage_quota_bytes: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A cap as given: a whole number of at least 1, or `none` (the host default).
fn parse_cap(field: &str, text: &str) -> Result<Option<i64>, String> {
    if text == "none" {
        return Ok(None);
    }
    let most: i64 = if field == "--storage-quota-bytes" { 1 << 50 } else { 1_000_000_000 };
    match text.parse::<i64>() {
        Ok(n) if (1..=most).contains(&n) => Ok(Some(n)),
        _ => Err(format!("{field} must be a whole number from 1 to {most}, or `none`; got `{text}`")),
    }
}

pub async fn run(args: LimitsArgs) -> ExitCode {
    let given = [
        ("--max-concurrent-jobs", &args.max_concurrent_jobs),
        ("--jobs-per-minute", &args.jobs_per_minute),
        ("--max-concurrent-renders", &args.max_concurrent_renders),
        ("--max-concurrent-deliveries", &args.max_concurrent_deliveries),
        ("--storage-quota-bytes", &args.storage_quota_bytes),
    ];
    let mut parsed = Vec::with_capacity(given.len());
    for (flag, value) in given {
        match value.as_deref().map(|v| parse_cap(flag, v)).transpose() {
            Ok(cap) => parsed.push(cap),
            Err(e) => return usage(e),
        }
    }
    let changes = ShareChanges {
        max_concurrent_jobs: parsed[0],
        jobs_per_minute: parsed[1],
        max_concurrent_renders: parsed[2],
        max_concurrent_deliveries: parsed[3],
        storage_quota_bytes: parsed[4],
    };
    let db = match super::admin::open(args.data_dir).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match db.set_customer_shares(&args.customer, &changes).await {
        Ok(Some(customer)) => {
            println!("{}", crate::api::views::customer_limits(&customer));
            ExitCode::SUCCESS
        }
        Ok(None) => usage(format!("no customer `{}`", args.customer)),
        Err(e) => failure(e),
    }
}
