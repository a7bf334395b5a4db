//! Dashboard sign-in: a customer's email and password (an argon2id hash, never the password),
//! browser sessions (only a SHA-256 of the cookie's token is stored, so a copy of the database
//! signs nobody in) with the CSRF token of each, and the invites of `VIDFARM_SIGNUP=invite`.

use super::customers::Customer;
use super::{DbError, Sqlite, now_ms};

/// A customer's sign-in identity.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub customer_id: String,
    pub email: String,
    pub password_hash: String,
}

/// A signed-in browser.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    /// The customer signed in; `None` for an operator's session (signed in with the admin token).
    pub customer_id: Option<String>,
    /// Whether the session was opened with the admin token.
    pub operator: bool,
    /// The SHA-256 of that admin token (the session is the operator's only while it is the
    /// token in force).
    pub token_digest: Option<String>,
    /// What every state-changing request of this session must carry (form field or header).
    pub csrf_token: String,
    pub expires_at: i64,
}

/// A session to store.
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    /// `None` for an operator.
    pub customer_id: Option<&'a str>,
    /// An operator's: the digest of the admin token.
    pub token_digest: Option<&'a str>,
    pub csrf_token: &'a str,
    pub expires_at: i64,
}

/// The most sessions a customer keeps; signing in past it ends the oldest.
pub(crate) const MAX_SESSIONS_PER_CUSTOMER: i64 = 20;

/// What [`Db::sign_up`] did.
#[derive(Debug)]
pub enum SignedUp {
    Created(Customer),
    EmailTaken,
    /// Sign-up is by invitation and this email has none (or it was used).
    NotInvited,
}

impl Sqlite {
    /// A new customer and their account, in one transaction; with `invite_only`, the email's
    /// unused invite is spent in the same transaction.
    pub async fn sign_up(
        &self,
        customer_id: &str,
        name: &str,
        email: &str,
        password_hash: &str,
        invite_only: bool,
    ) -> Result<SignedUp, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let taken: Option<(String,)> = sqlx::query_as("SELECT customer_id FROM accounts WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(SignedUp::EmailTaken);
        }
        if invite_only {
            let spent = sqlx::query("UPDATE invites SET used_at = ?2 WHERE email = ?1 AND used_at IS NULL")
                .bind(email)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() == 0 {
                return Ok(SignedUp::NotInvited);
            }
        }
        let customer: Customer =
            sqlx::query_as("INSERT INTO customers (id, name, created_at) VALUES (?, ?, ?) RETURNING *")
                .bind(customer_id)
                .bind(name)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await?;
        insert_account(&mut tx, customer_id, email, password_hash).await?;
        tx.commit().await?;
        Ok(SignedUp::Created(customer))
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, DbError> {
        sqlx::query_as("SELECT customer_id, email, password_hash FROM accounts WHERE email = ?")
            .bind(email)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn account_of(&self, customer_id: &str) -> Result<Option<Account>, DbError> {
        sqlx::query_as("SELECT customer_id, email, password_hash FROM accounts WHERE customer_id = ?")
            .bind(customer_id)
            .fetch_optional(self.pool())
            .await
    }

    /// Whether an unused invite exists for this email (checked before the work of hashing).
    pub async fn has_invite(&self, email: &str) -> Result<bool, DbError> {
        let found: Option<(String,)> = sqlx::query_as("SELECT email FROM invites WHERE email = ? AND used_at IS NULL")
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Give a customer (one made by the CLI, say) an email and password, or change them; their
    /// sessions end. `false` if the email belongs to another customer.
    pub async fn set_account(&self, customer_id: &str, email: &str, password_hash: &str) -> Result<bool, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let owner: Option<(String,)> = sqlx::query_as("SELECT customer_id FROM accounts WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        if owner.is_some_and(|(id,)| id != customer_id) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM accounts WHERE customer_id = ?").bind(customer_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sessions WHERE customer_id = ?").bind(customer_id).execute(&mut *tx).await?;
        insert_account(&mut tx, customer_id, email, password_hash).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A new password for a signed-in customer; every other session of theirs ends.
    pub async fn change_password(
        &self,
        customer_id: &str,
        password_hash: &str,
        keep_session: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE accounts SET password_hash = ?2, updated_at = ?3 WHERE customer_id = ?1")
            .bind(customer_id)
            .bind(password_hash)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE customer_id = ?1 AND id_hash <> ?2")
            .bind(customer_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Store a session; expired ones go, and a customer's oldest past the cap.
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, customer_id, operator, token_digest, csrf_token, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id_hash)
        .bind(new.customer_id)
        .bind(new.customer_id.is_none())
        .bind(new.token_digest)
        .bind(new.csrf_token)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?").bind(now).execute(&mut *tx).await?;
        if let Some(customer_id) = new.customer_id {
            sqlx::query(
                "DELETE FROM sessions WHERE customer_id = ?1 AND id_hash NOT IN
                    (SELECT id_hash FROM sessions WHERE customer_id = ?1 ORDER BY created_at DESC LIMIT ?2)",
            )
            .bind(customer_id)
            .bind(MAX_SESSIONS_PER_CUSTOMER)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The live session with this token hash.
    pub async fn session(&self, id_hash: &str) -> Result<Option<Session>, DbError> {
        sqlx::query_as(
            "SELECT customer_id, operator, token_digest, csrf_token, expires_at FROM sessions
             WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(self.writer()).await.map(drop)
    }

    /// Invite an email (sign-up by invitation); inviting again renews an unused invite.
    pub async fn invite(&self, email: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO invites (email, created_at) VALUES (?1, ?2)
             ON CONFLICT (email) DO UPDATE SET created_at = ?2 WHERE used_at IS NULL",
        )
        .bind(email)
        .bind(now_ms())
        .execute(self.writer())
        .await
        .map(drop)
    }
}

async fn insert_account(
    tx: &mut sqlx::SqliteConnection,
    customer_id: &str,
    email: &str,
    password_hash: &str,
) -> Result<(), DbError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO accounts (customer_id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(customer_id)
    .bind(email)
    .bind(password_hash)
    .bind(now)
    .bind(now)
    .execute(tx)
    .await
    .map(drop)
}
