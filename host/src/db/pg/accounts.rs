//! Postgres twin of the SQLite `accounts`: dashboard sign-in (email and argon2id hash),
//! browser sessions (a SHA-256 of the cookie's token, with the CSRF token of each) and the
//! invites of `VIDFARM_SIGNUP=invite`. Where SQLite's `BEGIN IMMEDIATE` made "is this email
//! free, then take it" atomic, here every transaction that decides on an email first takes a
//! transaction advisory lock keyed on it (the email may have no row to lock yet); one that
//! changes a customer's account or sessions locks the customer row first. Lock order: the
//! customer, then the email.

use super::limits::lock_customer;
use crate::db::accounts::{Account, MAX_SESSIONS_PER_CUSTOMER, NewSession, Session, SignedUp};
use crate::db::customers::Customer;
use crate::db::{DbError, now_ms};
use sqlx::PgConnection;

impl super::Pg {
    /// Postgres twin of `Sqlite::sign_up`: a new customer and their account, in one
    /// transaction; with `invite_only`, the email's unused invite is spent in the same
    /// transaction. Sign-ups of one email wait for each other (the email's lock), so the loser
    /// reads `EmailTaken`, as on SQLite, not a unique violation.
    pub async fn sign_up(
        &self,
        customer_id: &str,
        name: &str,
        email: &str,
        password_hash: &str,
        invite_only: bool,
    ) -> Result<SignedUp, DbError> {
        let mut tx = self.pool.begin().await?;
        lock_email(&mut tx, email).await?;
        let taken: Option<(String,)> = sqlx::query_as("SELECT customer_id FROM accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            tx.rollback().await?;
            return Ok(SignedUp::EmailTaken);
        }
        if invite_only {
            // One statement: a concurrent spend of the same invite waits for the row and then
            // finds it used.
            let spent = sqlx::query("UPDATE invites SET used_at = $2 WHERE email = $1 AND used_at IS NULL")
                .bind(email)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(SignedUp::NotInvited);
            }
        }
        let customer: Customer =
            sqlx::query_as("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3) RETURNING *")
                .bind(customer_id)
                .bind(name)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await?;
        insert_account(&mut tx, customer_id, email, password_hash).await?;
        tx.commit().await?;
        Ok(SignedUp::Created(customer))
    }

    /// Postgres twin of `Sqlite::account_by_email`.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, DbError> {
        sqlx::query_as("SELECT customer_id, email, password_hash FROM accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::account_of`.
    pub async fn account_of(&self, customer_id: &str) -> Result<Option<Account>, DbError> {
        sqlx::query_as("SELECT customer_id, email, password_hash FROM accounts WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Postgres twin of `Sqlite::has_invite`: whether an unused invite exists for this email
    /// (checked before the work of hashing; `sign_up` checks again).
    pub async fn has_invite(&self, email: &str) -> Result<bool, DbError> {
        let found: Option<(String,)> = sqlx::query_as("SELECT email FROM invites WHERE email = $1 AND used_at IS NULL")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Postgres twin of `Sqlite::set_account`: give a customer an email and password, or
    /// change them; their sessions end. `false` if the email belongs to another customer.
    /// Relies on the customer's row lock (two changes of one customer's account do not both
    /// delete and re-insert it) and the email's lock (the owner read stays true until commit).
    pub async fn set_account(&self, customer_id: &str, email: &str, password_hash: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        lock_customer(&mut tx, customer_id).await?;
        lock_email(&mut tx, email).await?;
        let owner: Option<(String,)> = sqlx::query_as("SELECT customer_id FROM accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        if owner.is_some_and(|(id,)| id != customer_id) {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM accounts WHERE customer_id = $1").bind(customer_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sessions WHERE customer_id = $1").bind(customer_id).execute(&mut *tx).await?;
        insert_account(&mut tx, customer_id, email, password_hash).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Postgres twin of `Sqlite::change_password`: a new password for a signed-in customer;
    /// every other session of theirs ends. No read decides anything: the transaction only makes
    /// the two writes atomic.
    pub async fn change_password(
        &self,
        customer_id: &str,
        password_hash: &str,
        keep_session: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE customer_id = $1")
            .bind(customer_id)
            .bind(password_hash)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE customer_id = $1 AND id_hash <> $2")
            .bind(customer_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Postgres twin of `Sqlite::create_session`: store a session; expired ones go, and a
    /// customer's oldest past the cap. The customer's row lock serialises their sign-ins, so two
    /// at once cannot both keep one session too many. Expired sessions are purged last, skipping
    /// rows another transaction holds (any purge gets them), so the purge never waits and
    /// never deadlocks with another sign-in's.
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        if let Some(customer_id) = new.customer_id {
            lock_customer(&mut tx, customer_id).await?;
        }
        sqlx::query(
            "INSERT INTO sessions (id_hash, customer_id, operator, token_digest, csrf_token, created_at, expires_at)
             VALUES ($1, $2::TEXT, $3, $4::TEXT, $5, $6, $7)",
        )
        .bind(new.id_hash)
        .bind(new.customer_id)
        .bind(i64::from(new.customer_id.is_none()))
        .bind(new.token_digest)
        .bind(new.csrf_token)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await?;
        if let Some(customer_id) = new.customer_id {
            sqlx::query(
                "DELETE FROM sessions WHERE customer_id = $1 AND id_hash NOT IN
                    (SELECT id_hash FROM sessions WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2)",
            )
            .bind(customer_id)
            .bind(MAX_SESSIONS_PER_CUSTOMER)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "WITH gone AS MATERIALIZED (SELECT id_hash FROM sessions WHERE expires_at < $1 FOR UPDATE SKIP LOCKED)
             DELETE FROM sessions USING gone WHERE sessions.id_hash = gone.id_hash",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Postgres twin of `Sqlite::session`: the live session with this token hash.
    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>, DbError> {
        sqlx::query_as(
            "SELECT customer_id, (sessions.operator <> 0) AS operator, token_digest, csrf_token, expires_at FROM sessions
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Postgres twin of `Sqlite::delete_session`.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&self.pool).await.map(drop)
    }

    /// Postgres twin of `Sqlite::invite`: invite an email (sign-up by invitation); inviting
    /// again renews an unused invite. One statement.
    pub async fn invite(&self, email: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO invites (email, created_at) VALUES ($1, $2)
             ON CONFLICT (email) DO UPDATE SET created_at = $2 WHERE invites.used_at IS NULL",
        )
        .bind(email)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

/// Serialise, until the transaction ends, every transaction deciding on this email (on any
/// host). Keyed apart from other advisory locks by its prefix; a hash collision only makes
/// two emails wait for each other.
async fn lock_email(conn: &mut PgConnection, email: &str) -> Result<(), DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('vidfarm:accounts.email:' || $1::TEXT, 0))")
        .bind(email)
        .execute(&mut *conn)
        .await
        .map(drop)
}

async fn insert_account(
    conn: &mut PgConnection,
    customer_id: &str,
    email: &str,
    password_hash: &str,
) -> Result<(), DbError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO accounts (customer_id, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(customer_id)
    .bind(email)
    .bind(password_hash)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(drop)
}
