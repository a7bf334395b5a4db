//! The methods of [`Db`]: each runs the same-named method of the backend in use
//! ([`Sqlite`](super::Sqlite) in this folder's modules, `Pg` in `pg/`), where its doc comment
//! says what it does. One list, so the two backends cannot drift apart: a method missing or
//! typed differently on either side is a compile error here.

use super::accounts::*;
use super::admin_views::*;
use super::billing::*;
use super::customers::*;
use super::events::*;
use super::holds::*;
use super::job_list::*;
use super::jobs::*;
use super::key_leases::*;
use super::provider_keys::*;
use super::renders::*;
use super::storage_quota::*;
use super::webhooks::*;
use super::{Backend, Db, DbError, billing, holds};
use crate::capabilities::JournalEntry;

/// `Db` methods that forward to the backend's method of the same name and signature.
macro_rules! forward {
    ($( pub async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl Db {
            $(
                #[doc = concat!("See `Sqlite::", stringify!($name), "` (SQLite) and `Pg::", stringify!($name), "` (PostgreSQL).")]
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.backend {
                        Backend::Sqlite(db) => db.$name($($arg),*).await,
                        Backend::Postgres(db) => db.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

forward! {
    // accounts.rs
    pub async fn sign_up(&self, customer_id: &str, name: &str, email: &str, password_hash: &str, invite_only: bool) -> Result<SignedUp, DbError>;
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, DbError>;
    pub async fn account_of(&self, customer_id: &str) -> Result<Option<Account>, DbError>;
    pub async fn has_invite(&self, email: &str) -> Result<bool, DbError>;
    pub async fn set_account(&self, customer_id: &str, email: &str, password_hash: &str) -> Result<bool, DbError>;
    pub async fn change_password(&self, customer_id: &str, password_hash: &str, keep_session: &str) -> Result<(), DbError>;
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<(), DbError>;
    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>, DbError>;
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError>;
    pub async fn invite(&self, email: &str) -> Result<(), DbError>;
    // admin_views.rs
    pub async fn customers_overview(&self, limit: u32) -> Result<Vec<CustomerOverview>, DbError>;
    // billing.rs
    pub async fn insert_ledger(&self, entry: &NewLedgerEntry<'_>, lease_token: &str, default_margin: f64, over: OverLimit) -> Result<LedgerWrite, DbError>;
    pub async fn usage(&self, customer_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<UsageRow>, DbError>;
    pub async fn add_credit(&self, customer_id: &str, nusd: i64) -> Result<bool, DbError>;
    pub async fn set_billing_terms(&self, customer_id: &str, monthly_cap_nusd: Option<Option<i64>>, margin: Option<Option<f64>>) -> Result<bool, DbError>;
    pub async fn billing_summary(&self, customer_id: &str) -> Result<Option<BillingSummary>, DbError>;
    pub async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerRow>, DbError>;
    // customers.rs
    pub async fn create_customer(&self, id: &str, name: &str) -> Result<Customer, DbError>;
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, DbError>;
    pub async fn set_customer_shares(&self, id: &str, changes: &ShareChanges) -> Result<Option<Customer>, DbError>;
    pub async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), DbError>;
    pub async fn api_keys(&self, customer_id: &str) -> Result<Vec<ApiKey>, DbError>;
    pub async fn touch_api_key(&self, key_hash: &str) -> Result<(), DbError>;
    pub async fn revoke_customer_api_key(&self, customer_id: &str, key_id: &str) -> Result<bool, DbError>;
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, DbError>;
    pub async fn authenticate(&self, customer_id: &str, key_hash: &str) -> Result<Option<Customer>, DbError>;
    pub async fn set_template_config(&self, customer_id: &str, template_id: &str, config: &str) -> Result<(), DbError>;
    pub async fn template_config(&self, customer_id: &str, template_id: &str) -> Result<Option<String>, DbError>;
    // events.rs
    pub async fn insert_event(&self, job_id: &str, lease_token: Option<&str>, key: (u32, u32), event: &NewEvent<'_>) -> Result<bool, DbError>;
    pub async fn event_keys(&self, job_id: &str) -> Result<Vec<(u32, u32)>, DbError>;
    pub async fn events_after(&self, job_id: &str, after: i64, limit: u32) -> Result<Vec<EventRow>, DbError>;
    // holds.rs
    pub async fn place_hold(&self, request: &HoldRequest<'_>, default_margin: f64) -> Result<HoldOutcome, DbError>;
    pub async fn hold_run_fuel(&self, hold: RunFuelHold) -> Result<HoldOutcome, DbError>;
    pub async fn note_hold_actual(&self, effect_key: &str, actual: &Actual<'_>, default_margin: f64) -> Result<Option<i64>, DbError>;
    pub async fn drop_hold(&self, effect_key: &str) -> Result<(), DbError>;
    pub async fn job_holds(&self, job_id: &str) -> Result<Vec<HoldRow>, DbError>;
    // job_list.rs
    pub async fn customer_jobs(&self, customer_id: &str, filter: &JobFilter<'_>, limit: u32) -> Result<Vec<JobRow>, DbError>;
    // jobs.rs
    pub async fn insert_job(&self, job: &NewJob) -> Result<Inserted, DbError>;
    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, DbError>;
    pub async fn customer_job(&self, customer_id: &str, template_id: &str, id: &str) -> Result<Option<JobRow>, DbError>;
    pub async fn customer_job_with_billing(&self, customer_id: &str, template_id: &str, id: &str) -> Result<Option<(JobRow, Vec<billing::LedgerRow>, Vec<holds::HoldRow>)>, DbError>;
    pub async fn list_jobs(&self, customer_id: &str, template_id: &str, status: Option<&str>, before: Option<&str>, limit: u32) -> Result<Vec<JobRow>, DbError>;
    pub async fn claim_jobs(&self, max: u32, lease_token: &str, lease_ms: i64, default_cap: u32) -> Result<Vec<JobRow>, DbError>;
    pub async fn heartbeat(&self, job_id: &str, lease_token: &str, lease_ms: i64) -> Result<Option<bool>, DbError>;
    pub async fn finish_run(&self, job_id: &str, lease_token: &str, fuel: u64, finish: &Finish, cpu: Option<CpuCharge>) -> Result<bool, DbError>;
    pub async fn cancel_job(&self, job_id: &str) -> Result<Option<JobRow>, DbError>;
    pub async fn resume_job(&self, job_id: &str, answer: &str) -> Result<Option<JobRow>, DbError>;
    pub async fn sweep_orphans(&self) -> Result<u64, DbError>;
    pub async fn sweep_finished(&self, cutoff_ms: i64) -> Result<u64, DbError>;
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, DbError>;
    pub async fn job_tree(&self, job_id: &str) -> Result<Vec<String>, DbError>;
    // journal.rs
    pub async fn journal(&self, job_id: &str) -> Result<Vec<JournalEntry>, DbError>;
    pub async fn append_journal_creating(&self, job_id: &str, lease_token: &str, entry: &JournalEntry, child: Option<&NewJob>) -> Result<super::journal::Journaled, DbError>;
    // key_leases.rs
    pub async fn lease_provider_key(&self, request: &LeaseRequest<'_>) -> Result<LeaseOutcome, DbError>;
    pub async fn extend_key_lease(&self, key_id: &str, token: &str, lease_ms: i64) -> Result<bool, DbError>;
    pub async fn finish_key_lease(&self, lease: &KeyLease, job_id: &str, provider: &str, model: &str, outcome: &KeyOutcome) -> Result<(), DbError>;
    pub async fn release_key_lease(&self, key_id: &str, token: &str) -> Result<(), DbError>;
    pub async fn key_usage_events(&self, key_id: &str) -> Result<Vec<(String, Option<i64>, i64)>, DbError>;
    // provider_keys.rs
    pub async fn insert_provider_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError>;
    pub async fn provider_keys(&self, customer_id: Option<&str>) -> Result<Vec<ProviderKeyRow>, DbError>;
    pub async fn provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<Option<ProviderKeyRow>, DbError>;
    pub async fn provider_key_by_id(&self, id: &str) -> Result<Option<ProviderKeyRow>, DbError>;
    pub async fn provider_key_secret(&self, customer_id: &str, id: &str) -> Result<Option<String>, DbError>;
    pub async fn update_provider_key(&self, customer_id: Option<&str>, id: &str, patch: ProviderKeyPatch) -> Result<bool, DbError>;
    pub async fn delete_provider_key(&self, customer_id: Option<&str>, id: &str) -> Result<bool, DbError>;
    pub async fn upsert_platform_key(&self, key: &NewProviderKey<'_>) -> Result<(), DbError>;
    pub async fn remove_platform_keys_except(&self, keep: &[String]) -> Result<(), DbError>;
    // renders.rs
    pub async fn create_render(&self, render: &NewRender<'_>) -> Result<RenderRow, DbError>;
    pub async fn claim_render(&self, token: &str, lease_ms: i64, max_attempts: i64, default_cap: i64, generations: bool) -> Result<Option<RenderRow>, DbError>;
    pub async fn heartbeat_render(&self, id: &str, token: &str, lease_ms: i64, progress: f64, output_seconds: f64) -> Result<bool, DbError>;
    pub async fn set_render_progress(&self, job_id: &str, progress: f64, message: &str) -> Result<(), DbError>;
    pub async fn set_render_external_id(&self, id: &str, token: &str, external_id: &str) -> Result<bool, DbError>;
    pub async fn release_render(&self, id: &str, token: &str) -> Result<bool, DbError>;
    pub async fn finish_render(&self, render: &RenderRow, token: &str, end: RenderEnd<'_>) -> Result<bool, DbError>;
    pub async fn render(&self, id: &str) -> Result<Option<RenderRow>, DbError>;
    // small_objects.rs
    pub async fn set_small_object(&self, key: &str, body: Option<Vec<u8>>) -> Result<(), DbError>;
    pub async fn small_object(&self, key: &str) -> Result<Option<Vec<u8>>, DbError>;
    pub async fn small_objects_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>, DbError>;
    // storage_quota.rs
    pub async fn record_stored_object(&self, object: StoredObject) -> Result<Recorded, DbError>;
    pub async fn storage_usage(&self, customer_id: &str, default_quota: u64) -> Result<Option<StorageUsage>, DbError>;
    pub async fn stored_objects_under(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<StoredObjectRow>, DbError>;
    pub async fn stored_object(&self, customer_id: &str, key: &str) -> Result<Option<StoredObjectRow>, DbError>;
    pub async fn forget_stored_object(&self, customer_id: &str, key: &str) -> Result<(), DbError>;
    // webhooks.rs
    pub async fn insert_destination(&self, id: &str, customer_id: &str, url: &str, description: Option<&str>, encrypted_secret: &str) -> Result<(), DbError>;
    pub async fn destinations(&self, customer_id: &str) -> Result<Vec<DestinationRow>, DbError>;
    pub async fn destination(&self, id: &str) -> Result<Option<DestinationRow>, DbError>;
    pub async fn delete_destination(&self, customer_id: &str, id: &str) -> Result<bool, DbError>;
    pub async fn customer_webhook_secret(&self, customer_id: &str) -> Result<Option<String>, DbError>;
    pub async fn set_customer_webhook_secret(&self, customer_id: &str, encrypted: &str, replace: bool) -> Result<bool, DbError>;
    pub async fn claim_deliveries(&self, max: u32, hold_ms: i64, default_cap: u32) -> Result<Vec<DeliveryRow>, DbError>;
    pub async fn record_attempt(&self, delivery: &DeliveryRow, outcome: &AttemptOutcome<'_>) -> Result<(), DbError>;
    pub async fn deliveries(&self, customer_id: &str, job_id: Option<&str>, status: Option<&str>, limit: u32) -> Result<Vec<DeliveryRow>, DbError>;
    pub async fn delivery(&self, customer_id: &str, id: &str) -> Result<Option<DeliveryRow>, DbError>;
    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRow>, DbError>;
    pub async fn insert_test_delivery(&self, customer_id: &str, destination_id: &str) -> Result<Option<String>, DbError>;
    pub async fn redeliver(&self, customer_id: &str, id: &str) -> Result<bool, DbError>;
}

impl Db {
    /// [`Db::insert_event`] without waiting for the commit: `written` is called with the
    /// outcome once the event is stored (or refused). On SQLite it runs on the writer thread,
    /// so it must be short and must not block (a panic is caught and logged).
    pub fn queue_event(
        &self,
        job_id: &str,
        lease_token: Option<&str>,
        key: (u32, u32),
        event: &NewEvent<'_>,
        written: impl FnOnce(Result<bool, DbError>) + Send + 'static,
    ) {
        match &self.backend {
            Backend::Sqlite(db) => db.queue_event(job_id, lease_token, key, event, written),
            Backend::Postgres(db) => db.queue_event(job_id, lease_token, key, event, written),
        }
    }
}
