//! Production guardrails: settings that would lose data or leak are refused at start, each
//! refusal naming the setting and the fix. Development runs with whatever it is given.

use crate::config::{Config, Environment};

/// Why this configuration must not run in production; empty when it may (or in development).
pub fn production_refusals(config: &Config) -> Vec<String> {
    if config.env != Environment::Production {
        return Vec::new();
    }
    let mut refusals = Vec::new();
    if config.s3.is_none() && !config.allow_local_objects {
        refusals.push(
            "objects would be stored on local disk (lost with the container): set VIDFARM_S3_BUCKET with \
             VIDFARM_S3_ACCESS_KEY_ID and VIDFARM_S3_SECRET_ACCESS_KEY, or opt in with VIDFARM_ALLOW_LOCAL_OBJECTS=true"
                .to_string(),
        );
    }
    if config.providers.master_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        refusals.push(
            "no master key (provider keys, webhook secrets and compiled templates are protected by it): set \
             VIDFARM_MASTER_KEY to 32 random bytes in base64 (`openssl rand -base64 32`)"
                .to_string(),
        );
    }
    if !config.trusted_keys().is_ok_and(|keys| !keys.is_empty()) {
        refusals.push(
            "no trusted registry keys (no template could be verified): set VIDFARM_TRUSTED_KEYS to \
             `<key id>:<public key>` entries or a file of them (`vidfarm registry keygen` prints one)"
                .to_string(),
        );
    }
    if config.metrics_token.is_none() && !config.metrics_public {
        refusals.push(
            "/metrics would be public (it shows every customer's queue): set VIDFARM_METRICS_TOKEN, or opt in \
             with VIDFARM_METRICS_PUBLIC=true"
                .to_string(),
        );
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Config {
        let mut config = Config::from_env().expect("the test environment is a valid config");
        config.env = Environment::Production;
        config.s3 = None;
        config.allow_local_objects = false;
        config.providers.master_key = None;
        config.trusted_keys = String::new();
        config.metrics_token = None;
        config.metrics_public = false;
        config
    }

    #[test]
    fn each_unsafe_production_setting_is_refused_with_its_fix() {
        let refusals = production_refusals(&production());
        for (setting, fix) in [
            ("VIDFARM_S3_BUCKET", "VIDFARM_ALLOW_LOCAL_OBJECTS=true"),
            ("VIDFARM_MASTER_KEY", "openssl rand"),
            ("VIDFARM_TRUSTED_KEYS", "keygen"),
            ("VIDFARM_METRICS_TOKEN", "VIDFARM_METRICS_PUBLIC=true"),
        ] {
            assert!(
                refusals.iter().any(|r| r.contains(setting) && r.contains(fix)),
                "{setting} is named with its fix: {refusals:#?}"
            );
        }
        assert_eq!(refusals.len(), 4);
    }

    #[test]
    fn explicit_opt_ins_and_development_start() {
        let mut config = production();
        config.allow_local_objects = true;
        config.metrics_public = true;
        let refusals = production_refusals(&config);
        assert_eq!(refusals.len(), 2, "master key and trusted keys remain: {refusals:#?}");
        config.env = Environment::Development;
        assert!(production_refusals(&config).is_empty());
    }
}
