//! The artifact manifest, its signature, and the checks a host runs before it loads an
//! artifact: signed, by a trusted key, untampered (manifest and bytes), for a compatible world.

use crate::{RegistryError, SigningKey, TrustedKeys, digest};
use serde::{Deserialize, Serialize};

/// The WIT world templates are built against; a host loads artifacts of the same major.
pub const WIT_WORLD: &str = "vidfarm:template@0.1.0";

/// One operation as the manifest records it (from the component's `describe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationSummary {
    pub name: String,
    pub description: String,
    pub workflow: String,
    /// The input JSON Schema (as text, exactly as `describe` gave it).
    pub input_schema: String,
}

/// What is signed. Field order is fixed, so its JSON is canonical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactManifest {
    pub template_id: String,
    pub version: String,
    /// blake3 of the component bytes, hex.
    pub digest: String,
    pub wit_world: String,
    pub operations: Vec<OperationSummary>,
    pub signer_key_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// blake3 of the template's Remotion bundle (`bundle.tar`), hex, when it carries its own
    /// compositions. Absent (not `null`) otherwise, so manifests signed before bundles existed
    /// keep their canonical JSON and their signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_digest: Option<String>,
}

impl ArtifactManifest {
    pub fn new(
        template_id: &str,
        version: &str,
        bytes: &[u8],
        operations: Vec<OperationSummary>,
        signer: &SigningKey,
    ) -> Self {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self {
            template_id: template_id.into(),
            version: version.into(),
            digest: digest(bytes),
            wit_world: WIT_WORLD.into(),
            operations,
            signer_key_id: signer.key_id(),
            created_at,
            bundle_digest: None,
        }
    }

    /// The same manifest, also naming `bundle` (the packed Remotion bundle) by its digest.
    pub fn with_bundle(mut self, bundle: &[u8]) -> Self {
        self.bundle_digest = Some(digest(bundle));
        self
    }

    fn canonical(&self) -> Result<Vec<u8>, RegistryError> {
        serde_json::to_vec(self).map_err(|e| RegistryError::Invalid { what: "manifest", problem: e.to_string() })
    }
}

/// A manifest and its ed25519 signature (base64) over the manifest's canonical JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedManifest {
    pub manifest: ArtifactManifest,
    #[serde(default)]
    pub signature: Option<String>,
}

impl SigningKey {
    pub fn sign(&self, mut manifest: ArtifactManifest) -> Result<SignedManifest, RegistryError> {
        manifest.signer_key_id = self.key_id();
        let signature = self.sign_bytes(&manifest.canonical()?);
        Ok(SignedManifest { manifest, signature: Some(signature) })
    }
}

/// The checks before loading: signature present and valid for a trusted key, the bytes are
/// the ones signed, and the world's major version matches ours. Returns the manifest.
pub fn verify_artifact(
    bytes: &[u8],
    signed: &SignedManifest,
    trusted: &TrustedKeys,
) -> Result<ArtifactManifest, RegistryError> {
    let manifest = &signed.manifest;
    let signature = signed.signature.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        RegistryError::Unsigned(format!("{}@{} has no signature", manifest.template_id, manifest.version))
    })?;
    trusted.verify(&manifest.signer_key_id, &manifest.canonical()?, signature).map_err(|e| match e {
        RegistryError::BadSignature(_) => RegistryError::Tampered(format!(
            "the manifest of {}@{} does not match its signature",
            manifest.template_id, manifest.version
        )),
        other => other,
    })?;
    let actual = digest(bytes);
    if actual != manifest.digest {
        return Err(RegistryError::Tampered(format!(
            "the component's digest is {actual}, the signed manifest says {}",
            manifest.digest
        )));
    }
    if major(&manifest.wit_world) != major(WIT_WORLD) {
        return Err(RegistryError::IncompatibleWorld { found: manifest.wit_world.clone(), expected: WIT_WORLD.into() });
    }
    Ok(manifest.clone())
}

/// The check before a template's Remotion bundle is used: its bytes are the ones the verified
/// manifest names.
pub fn verify_bundle(bundle: &[u8], manifest: &ArtifactManifest) -> Result<(), RegistryError> {
    let named = manifest.bundle_digest.as_deref().ok_or_else(|| {
        RegistryError::Tampered(format!("{}@{} carries no bundle", manifest.template_id, manifest.version))
    })?;
    let actual = digest(bundle);
    if actual != named {
        return Err(RegistryError::Tampered(format!(
            "the Remotion bundle's digest is {actual}, the signed manifest says {named}"
        )));
    }
    Ok(())
}

/// `vidfarm:template@0.1.0` → `vidfarm:template@0.1` for 0.x (semver: minor is the breaking
/// part), `…@1` for 1.x and later.
fn major(world: &str) -> String {
    let Some((name, version)) = world.split_once('@') else { return world.to_string() };
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("{name}@0.{minor}"),
        (Some(major), _) => format!("{name}@{major}"),
        _ => world.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &SigningKey, bytes: &[u8]) -> SignedManifest {
        key.sign(ArtifactManifest::new("hello", "1.0.0", bytes, vec![], key)).expect("signs")
    }

    fn trusting(key: &SigningKey) -> TrustedKeys {
        TrustedKeys::parse(&key.public_line()).expect("parses")
    }

    #[test]
    fn a_signed_artifact_from_a_trusted_key_verifies() {
        let key = SigningKey::generate();
        let manifest = verify_artifact(b"bytes", &signed(&key, b"bytes"), &trusting(&key)).expect("verifies");
        assert_eq!((manifest.template_id.as_str(), manifest.wit_world.as_str()), ("hello", WIT_WORLD));
    }

    #[test]
    fn an_unsigned_artifact_is_refused() {
        let key = SigningKey::generate();
        let mut artifact = signed(&key, b"bytes");
        artifact.signature = None;
        assert!(matches!(verify_artifact(b"bytes", &artifact, &trusting(&key)), Err(RegistryError::Unsigned(_))));
    }

    #[test]
    fn tampered_bytes_or_manifest_are_refused() {
        let key = SigningKey::generate();
        let artifact = signed(&key, b"bytes");
        assert!(
            matches!(verify_artifact(b"bytez", &artifact, &trusting(&key)), Err(RegistryError::Tampered(m)) if m.contains("digest"))
        );
        let mut edited = artifact.clone();
        edited.manifest.version = "1.0.1".into();
        assert!(
            matches!(verify_artifact(b"bytes", &edited, &trusting(&key)), Err(RegistryError::Tampered(m)) if m.contains("signature"))
        );
    }

    #[test]
    fn an_artifact_signed_by_an_untrusted_key_is_refused() {
        let (publisher, other) = (SigningKey::generate(), SigningKey::generate());
        let result = verify_artifact(b"bytes", &signed(&publisher, b"bytes"), &trusting(&other));
        assert!(matches!(result, Err(RegistryError::UntrustedKey(id)) if id == publisher.key_id()));
    }

    #[test]
    fn an_artifact_for_another_world_major_is_refused_but_a_patch_is_fine() {
        let key = SigningKey::generate();
        for (world, ok) in
            [("vidfarm:template@0.2.0", false), ("vidfarm:template@1.0.0", false), ("vidfarm:template@0.1.7", true)]
        {
            let mut manifest = ArtifactManifest::new("hello", "1.0.0", b"bytes", vec![], &key);
            manifest.wit_world = world.into();
            let result = verify_artifact(b"bytes", &key.sign(manifest).expect("signs"), &trusting(&key));
            assert_eq!(result.is_ok(), ok, "{world}: {result:?}");
        }
    }

    #[test]
    fn a_manifest_without_a_bundle_signs_the_same_json_as_before_bundles() {
        let key = SigningKey::generate();
        let manifest = ArtifactManifest::new("hello", "1.0.0", b"bytes", vec![], &key);
        let json = String::from_utf8(manifest.canonical().expect("json")).expect("utf-8");
        assert!(!json.contains("bundle"), "{json}");
        let old: ArtifactManifest = serde_json::from_str(&json).expect("an old manifest still reads");
        assert_eq!(old.bundle_digest, None);
    }

    #[test]
    fn a_bundle_is_bound_to_its_manifest_by_digest() {
        let key = SigningKey::generate();
        let manifest = ArtifactManifest::new("hello", "1.0.0", b"bytes", vec![], &key).with_bundle(b"tar");
        let signed = key.sign(manifest).expect("signs");
        let verified = verify_artifact(b"bytes", &signed, &trusting(&key)).expect("verifies");
        verify_bundle(b"tar", &verified).expect("the signed bundle");
        let refused = verify_bundle(b"taz", &verified).expect_err("another bundle");
        assert!(matches!(refused, RegistryError::Tampered(ref m) if m.contains("bundle's digest")), "{refused}");
        let mut stripped = signed.clone();
        stripped.manifest.bundle_digest = None;
        assert!(matches!(verify_artifact(b"bytes", &stripped, &trusting(&key)), Err(RegistryError::Tampered(_))));
    }

    #[test]
    fn a_trusted_key_list_with_a_wrong_id_is_refused() {
        let key = SigningKey::generate();
        let line = key.public_line();
        let (_, public) = line.split_once(':').expect("id:key");
        assert!(TrustedKeys::parse(&format!("0000000000000000:{public}")).is_err());
        assert!(TrustedKeys::parse("not-a-key").is_err());
    }

    #[test]
    fn a_key_file_round_trips() {
        let key = SigningKey::generate();
        let again = SigningKey::from_file_text(&key.to_file_text()).expect("reads");
        assert_eq!(key.public_line(), again.public_line());
        assert!(SigningKey::from_file_text("hello").is_err());
    }
}
