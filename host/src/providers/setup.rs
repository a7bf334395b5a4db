//! Building the router: the master key, the HTTP client, and the platform keys from the
//! environment (development: `OPENAI_API_KEY` … from the process or `./.env`; production:
//! only `VIDFARM_PLATFORM_<PROVIDER>_API_KEY`, which an operator sets on purpose).

use super::{ALL, MasterKey, ProviderRouter, provider_name, secrets};
use crate::config::{Config, Environment, PlatformKey};

/// The master key of `config`: `VIDFARM_MASTER_KEY`, or in development one kept in the data dir.
pub fn master_key(config: &Config) -> Result<MasterKey, secrets::SecretError> {
    MasterKey::load(
        config.providers.master_key.as_deref(),
        config.env == Environment::Production,
        &config.data_dir.join("master.key"),
    )
}
use crate::db::Db;
use crate::db::provider_keys::NewProviderKey;
use crate::metrics::Metrics;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error("the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("storing platform keys: {0}")]
    Database(#[from] crate::db::DbError),
}

/// The platform keys this environment allows (see the module docs); `dotenv` is the text of
/// `./.env`, read in development only.
pub fn env_keys(env: Environment, dotenv: &str) -> Vec<PlatformKey> {
    let file = parse_dotenv(dotenv);
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .filter(|v| !v.trim().is_empty())
    };
    ALL.into_iter()
        .filter_map(|p| {
            let upper = provider_name(p).to_ascii_uppercase();
            match env {
                Environment::Development => lookup(&format!("{upper}_API_KEY")).map(|secret| PlatformKey {
                    provider: p,
                    secret,
                    source: "environment",
                }),
                Environment::Production => std::env::var(format!("VIDFARM_PLATFORM_{upper}_API_KEY"))
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|secret| PlatformKey { provider: p, secret, source: "platform" }),
            }
        })
        .collect()
}

/// `KEY=value` lines; `#` comments, `export ` and quotes allowed.
fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), unquoted.to_string()))
        })
        .collect()
}

impl ProviderRouter {
    /// The router for `config`, with the environment's platform keys stored (encrypted) as
    /// rows the key queue leases like any other.
    pub async fn start(
        db: Db,
        config: &Config,
        master: MasterKey,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ProviderSetupError> {
        let keys = &config.providers.platform_keys;
        let mut ids = Vec::new();
        for PlatformKey { provider, secret, source } in keys {
            let id = format!("pk_{source}_{}", provider_name(*provider));
            let key = NewProviderKey {
                id: &id,
                customer_id: None,
                provider: provider_name(*provider),
                label: Some(source),
                encrypted_secret: &master.encrypt(&id, secret),
                secret_last4: &secrets::last4(secret),
                weight: 1,
                models: &[],
                source,
            };
            db.upsert_platform_key(&key).await?;
            ids.push(id);
        }
        db.remove_platform_keys_except(&ids).await?;
        let http = reqwest::Client::builder()
            .timeout(config.providers.timeout)
            .connect_timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            db,
            http,
            master,
            settings: config.providers.clone(),
            metrics,
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            margin: config.default_margin,
            platform_providers: keys.iter().map(|k| k.provider).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_are_read_like_shells_write_them() {
        let parsed = parse_dotenv("# keys\nexport OPENAI_API_KEY=\"sk-1\"\nGEMINI_API_KEY='g-2'\nBROKEN\nX = y \n");
        assert_eq!(
            parsed,
            vec![
                ("OPENAI_API_KEY".into(), "sk-1".into()),
                ("GEMINI_API_KEY".into(), "g-2".into()),
                ("X".into(), "y".into())
            ]
        );
    }
}
