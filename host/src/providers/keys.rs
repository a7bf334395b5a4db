//! Adding and changing customer provider keys, shared by the API and the CLI: validation
//! with messages that name the field, and encryption before anything is stored.

use super::{MasterKey, parse_provider, secrets};
use crate::db::provider_keys::{NewProviderKey, ProviderKeyPatch, ProviderKeyRow};
use crate::db::{Db, DbError};
use serde_json::{Value, json};

/// A field and what is wrong with it.
pub type Invalid = (&'static str, String);

/// A new key, validated.
pub struct KeyInput {
    pub provider: String,
    pub secret: String,
    pub label: Option<String>,
    pub weight: i64,
    pub models: Vec<String>,
}

impl KeyInput {
    pub fn new(
        provider: &str,
        secret: &str,
        label: Option<String>,
        weight: Option<i64>,
        models: Vec<String>,
    ) -> Result<Self, Invalid> {
        if parse_provider(provider).is_none() {
            return Err((
                "provider",
                format!("must be openai, gemini, openrouter, perplexity or elevenlabs, not {provider:?}"),
            ));
        }
        Ok(Self {
            provider: provider.to_string(),
            secret: secret_ok(secret)?,
            label: label.map(label_ok).transpose()?,
            weight: weight_ok(weight.unwrap_or(1))?,
            models: models_ok(models)?,
        })
    }

    /// Encrypt and store; returns the new key's id.
    pub async fn store(&self, db: &Db, master: &MasterKey, customer_id: &str) -> Result<String, DbError> {
        let id = format!("pk_{}", uuid::Uuid::now_v7().simple());
        db.insert_provider_key(&NewProviderKey {
            id: &id,
            customer_id: Some(customer_id),
            provider: &self.provider,
            label: self.label.as_deref(),
            encrypted_secret: &master.encrypt(&id, &self.secret),
            secret_last4: &secrets::last4(&self.secret),
            weight: self.weight,
            models: &self.models,
            source: "customer",
        })
        .await?;
        Ok(id)
    }
}

/// A patch from JSON: only `label`, `weight`, `models`, `status` and `secret` may appear.
pub fn patch_from_json(body: &Value, master: &MasterKey, key_id: &str) -> Result<ProviderKeyPatch, Invalid> {
    let object = body.as_object().ok_or(("body", "must be a JSON object".to_string()))?;
    if let Some(unknown) =
        object.keys().find(|k| !["label", "weight", "models", "status", "secret"].contains(&k.as_str()))
    {
        return Err(("body", format!("has an unknown field `{unknown}`")));
    }
    if object.is_empty() {
        return Err(("body", "must change at least one of label, weight, models, status, secret".into()));
    }
    let mut patch = ProviderKeyPatch::default();
    if let Some(label) = object.get("label") {
        patch.label = Some(match label {
            Value::Null => None,
            Value::String(s) => Some(label_ok(s.clone())?),
            _ => return Err(("label", "must be a string or null".into())),
        });
    }
    if let Some(weight) = object.get("weight") {
        patch.weight = Some(weight_ok(weight.as_i64().ok_or(("weight", "must be an integer".to_string()))?)?);
    }
    if let Some(models) = object.get("models") {
        patch.models = Some(models_ok(strings("models", models)?)?);
    }
    if let Some(status) = object.get("status") {
        match status.as_str() {
            Some(s @ ("active" | "paused")) => patch.status = Some(s.to_string()),
            _ => return Err(("status", "must be \"active\" or \"paused\"".into())),
        }
    }
    if let Some(secret) = object.get("secret") {
        let secret = secret_ok(secret.as_str().ok_or(("secret", "must be a string".to_string()))?)?;
        patch.secret = Some((master.encrypt(key_id, &secret), secrets::last4(&secret)));
    }
    Ok(patch)
}

/// A key as its owner sees it: never the secret, only a hint of its last four characters.
pub fn view(row: &ProviderKeyRow) -> Value {
    let time = |ms: Option<i64>| ms.map_or(Value::Null, crate::api::views::timestamp);
    json!({
        "id": row.id,
        "provider": row.provider,
        "label": row.label,
        "secret_hint": format!("…{}", row.secret_last4),
        // A key cooling down after a rate limit is not used until it is over: it reads so.
        "status": if row.status == "active" && row.cooldown_until.is_some_and(|t| t > crate::db::now_ms()) {
            "rate_limited"
        } else {
            row.status.as_str()
        },
        "weight": row.weight,
        "models": row.models(),
        "source": row.source,
        "leased": row.leased,
        "last_used_at": time(row.last_used_at),
        "cooldown_until": time(row.cooldown_until.filter(|t| *t > crate::db::now_ms())),
        "disabled_reason": row.disabled_reason,
        "created_at": time(Some(row.created_at)),
        "updated_at": time(Some(row.updated_at)),
    })
}

/// A list of strings at `field`.
pub fn strings(field: &'static str, value: &Value) -> Result<Vec<String>, Invalid> {
    value
        .as_array()
        .and_then(|items| items.iter().map(|m| m.as_str().map(str::to_string)).collect())
        .ok_or((field, "must be an array of strings".into()))
}

fn secret_ok(secret: &str) -> Result<String, Invalid> {
    let secret = secret.trim();
    if secret.len() < 8 || secret.len() > 4096 || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(("secret", "must be the provider's API key: 8 to 4096 characters, no spaces".into()));
    }
    Ok(secret.to_string())
}

fn label_ok(label: String) -> Result<String, Invalid> {
    if label.chars().count() > 100 {
        return Err(("label", "must be at most 100 characters".into()));
    }
    Ok(label)
}

fn weight_ok(weight: i64) -> Result<i64, Invalid> {
    if !(1..=1000).contains(&weight) {
        return Err(("weight", format!("must be an integer from 1 to 1000, not {weight}")));
    }
    Ok(weight)
}

fn models_ok(models: Vec<String>) -> Result<Vec<String>, Invalid> {
    if models.len() > 100 {
        return Err(("models", "may list at most 100 models".into()));
    }
    if let Some(bad) = models.iter().find(|m| m.trim().is_empty() || m.len() > 200 || m.contains(',')) {
        return Err(("models", format!("has an invalid model name {bad:?}")));
    }
    Ok(models)
}
