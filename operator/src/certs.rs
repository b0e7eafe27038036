//! The webhook's serving certificate.
//!
//! It lives in a `kubernetes.io/tls` Secret in the operator's namespace (`tls.crt`, `tls.key`,
//! `ca.crt`). Every replica watches that Secret and swaps the certificate it serves the moment
//! the Secret changes ([`CertResolver`]: no restart, no dropped connections).
//!
//! Who writes it:
//! - `self` mode (default): the leader. It creates a CA (10 years) and a serving certificate for
//!   the webhook Service's DNS names (`--webhook-cert-validity`, default 90 days), keeps the CA
//!   key in the same Secret (key `ca.key`), issues a new serving certificate from the same CA
//!   once less than a third of its validity is left, and keeps the `caBundle` of every webhook
//!   in its MutatingWebhookConfiguration equal to `ca.crt`.
//! - `external` mode (chart `webhook.certManager.enabled`): cert-manager writes the Secret and
//!   its CA injector the `caBundle`; the operator only serves what is in the Secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::reconcile::{FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL};

/// Annotation with the serving certificate's expiry (RFC 3339), written with it.
pub const NOT_AFTER_ANNOTATION: &str = "kubegost.io/not-after";
/// Subject of the CA the operator creates.
const CA_NAME: &str = "kubegost webhook CA";
/// Validity of that CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The Secret lacks a key or holds no usable PEM.
    #[error("Secret {secret}: {what}")]
    Secret {
        /// Secret name.
        secret: String,
        /// What is wrong.
        what: String,
    },
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Certificate settings.
#[derive(Debug, Clone)]
pub struct CertSettings {
    /// Namespace of the Secret (the operator's).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// The webhook Service (its DNS names go into the certificate).
    pub service: String,
    /// The MutatingWebhookConfiguration whose `caBundle` the leader maintains (`self` mode).
    pub webhook_config: Option<String>,
    /// `true`: the operator makes and rotates the certificate; `false`: someone else does.
    pub self_managed: bool,
    /// Validity of a serving certificate.
    pub validity: Duration,
    /// Extra subject names (DNS names or IP addresses).
    pub extra_sans: Vec<String>,
}

impl CertSettings {
    /// The names the serving certificate is valid for.
    pub fn sans(&self) -> Vec<String> {
        let (s, ns) = (&self.service, &self.namespace);
        let mut v = vec![
            s.clone(),
            format!("{s}.{ns}"),
            format!("{s}.{ns}.svc"),
            format!("{s}.{ns}.svc.cluster.local"),
        ];
        v.extend(self.extra_sans.iter().cloned());
        v
    }
}

/// PEM of a CA: certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPem {
    /// Certificate.
    pub cert: String,
    /// PKCS#8 key.
    pub key: String,
}

fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn at(t: std::time::SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// A new CA valid from now for 10 years.
pub fn new_ca(now: std::time::SystemTime) -> Result<CaPem, CertError> {
    let key = rcgen::KeyPair::generate()?;
    let mut p = ca_params();
    p.not_before = at(now - Duration::from_secs(300));
    p.not_after = at(now + CA_VALIDITY);
    let cert = p.self_signed(&key)?;
    Ok(CaPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A serving certificate for `sans`, signed by `ca`, valid from now for `validity`: (cert PEM,
/// key PEM, not after).
pub fn issue(
    ca: &CaPem,
    sans: &[String],
    validity: Duration,
    now: std::time::SystemTime,
) -> Result<(String, String, std::time::SystemTime), CertError> {
    let ca_key = rcgen::KeyPair::from_pem(&ca.key)?;
    let issuer = rcgen::Issuer::new(ca_params(), ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        sans.first().cloned().unwrap_or_default(),
    );
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(rcgen::SanType::IpAddress(ip)),
            Err(_) => rcgen::string::Ia5String::try_from(s.as_str()).map(rcgen::SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    // a little slack for clocks behind ours
    p.not_before = at(now - Duration::from_secs(60));
    let not_after = now + validity;
    p.not_after = at(not_after);
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

/// Whether a serving certificate expiring at `not_after` should be replaced now: less than a
/// third of `validity` left.
pub fn due(
    not_after: std::time::SystemTime,
    validity: Duration,
    now: std::time::SystemTime,
) -> bool {
    not_after
        .duration_since(now)
        .map(|left| left < validity / 3)
        .unwrap_or(true)
}

fn text(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// The certificate and key of a TLS Secret as rustls wants them.
pub fn certified_key(s: &Secret, name: &str) -> Result<CertifiedKey, CertError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |what: &str| CertError::Secret {
        secret: name.to_string(),
        what: what.to_string(),
    };
    let crt = text(s, "tls.crt").ok_or_else(|| bad("no tls.crt"))?;
    let key = text(s, "tls.key").ok_or_else(|| bad("no tls.key"))?;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(crt.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&format!("tls.crt: {e}")))?;
    if chain.is_empty() {
        return Err(bad("tls.crt holds no certificate"));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| bad(&format!("tls.key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| bad(&format!("tls.crt/tls.key: {e}")))
}

/// Serves whatever certificate was loaded last.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// Replaces the certificate served from now on.
    pub fn set(&self, ck: CertifiedKey) {
        *self.current.write() = Some(Arc::new(ck));
    }

    /// Whether a certificate is loaded.
    pub fn loaded(&self) -> bool {
        self.current.read().is_some()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }
}

/// Every replica: loads the Secret into `resolver` whenever it changes (polled every
/// `period`; a failed load keeps the previous certificate). Returns when `stop` fires.
pub async fn load_loop(
    client: Client,
    settings: CertSettings,
    resolver: Arc<CertResolver>,
    expiry: prometheus_client::metrics::gauge::Gauge,
    period: Duration,
    stop: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let mut last_rv = None;
    loop {
        match api.get_opt(&settings.secret).await {
            Ok(Some(s)) if s.metadata.resource_version != last_rv => {
                match certified_key(&s, &settings.secret) {
                    Ok(ck) => {
                        resolver.set(ck);
                        last_rv = s.metadata.resource_version.clone();
                        if let Some(t) = s
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(NOT_AFTER_ANNOTATION))
                            .and_then(|v| v.parse::<k8s_openapi::jiff::Timestamp>().ok())
                        {
                            expiry.set(t.as_second());
                        }
                        tracing::info!(secret = %settings.secret, "webhook certificate loaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "webhook certificate not loaded; serving the previous one")
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::debug!(secret = %settings.secret, "webhook certificate Secret not there yet")
            }
            Err(e) => tracing::warn!(error = %e, "reading the webhook certificate Secret"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

fn secret_of(
    settings: &CertSettings,
    ca: &CaPem,
    cert: &str,
    key: &str,
    not_after: std::time::SystemTime,
) -> Secret {
    let nf = k8s_openapi::jiff::Timestamp::try_from(not_after)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let data = BTreeMap::from([
        (
            "ca.crt".to_string(),
            ByteString(ca.cert.clone().into_bytes()),
        ),
        (
            "ca.key".to_string(),
            ByteString(ca.key.clone().into_bytes()),
        ),
        (
            "tls.crt".to_string(),
            ByteString(cert.to_string().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(key.to_string().into_bytes()),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(NOT_AFTER_ANNOTATION.to_string(), nf)])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// One round of the leader's maintenance: the Secret exists and is not due, and the webhook
/// configuration trusts its CA. Returns the serving certificate's expiry.
pub async fn maintain_once(client: &Client, settings: &CertSettings) -> Result<(), CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let now = std::time::SystemTime::now();
    let current = api.get_opt(&settings.secret).await?;
    let ca = match current.as_ref().and_then(|s| {
        Some(CaPem {
            cert: text(s, "ca.crt")?,
            key: text(s, "ca.key")?,
        })
    }) {
        Some(ca) => ca,
        None => new_ca(now)?,
    };
    let not_after = current
        .as_ref()
        .and_then(|s| {
            s.metadata
                .annotations
                .as_ref()?
                .get(NOT_AFTER_ANNOTATION)
                .cloned()
        })
        .and_then(|v| v.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(std::time::SystemTime::from);
    let need = match (&current, not_after) {
        (Some(s), Some(na)) => due(na, settings.validity, now) || text(s, "tls.crt").is_none(),
        _ => true,
    };
    if need {
        let (cert, key, na) = issue(&ca, &settings.sans(), settings.validity, now)?;
        let s = secret_of(settings, &ca, &cert, &key, na);
        match &current {
            None => {
                match api.create(&PostParams::default(), &s).await {
                    Ok(_) => {}
                    // another leader (a moment ago) made it: take theirs next round
                    Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Some(_) => {
                api.patch(
                    &settings.secret,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&s),
                )
                .await?;
            }
        }
        tracing::info!(secret = %settings.secret, "webhook serving certificate issued");
    }
    if let Some(mwc) = &settings.webhook_config {
        patch_ca_bundle(client, mwc, &ca.cert).await?;
    }
    Ok(())
}

/// Sets `caBundle` of every webhook of `name` to `ca_pem` (a write only when one differs).
pub async fn patch_ca_bundle(client: &Client, name: &str, ca_pem: &str) -> Result<(), CertError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mwc) = api.get_opt(name).await? else {
        tracing::debug!(
            webhook_config = name,
            "MutatingWebhookConfiguration not there yet"
        );
        return Ok(());
    };
    let want = ByteString(ca_pem.as_bytes().to_vec());
    let mut ops = Vec::new();
    for (i, w) in mwc.webhooks.iter().flatten().enumerate() {
        if w.client_config.ca_bundle.as_ref() != Some(&want) {
            ops.push(serde_json::json!({
                "op": "add",
                "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": want,
            }));
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| CertError::Secret {
            secret: name.to_string(),
            what: e.to_string(),
        })?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    tracing::info!(webhook_config = name, "caBundle updated");
    Ok(())
}

/// The leader's loop: [`maintain_once`] every `period` until `stop`.
pub async fn maintain(
    client: Client,
    settings: CertSettings,
    period: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = maintain_once(&client, &settings).await {
            tracing::error!(error = %e, "webhook certificate maintenance failed; retrying");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_chains_to_the_ca_and_names_the_service() {
        let now = std::time::SystemTime::now();
        let ca = new_ca(now).unwrap();
        let settings = CertSettings {
            namespace: "kubegost-system".into(),
            secret: "s".into(),
            service: "kubegost-webhook".into(),
            webhook_config: None,
            self_managed: true,
            validity: Duration::from_secs(3600),
            extra_sans: vec!["127.0.0.1".into()],
        };
        let (cert, key, na) = issue(&ca, &settings.sans(), settings.validity, now).unwrap();
        let s = secret_of(&settings, &ca, &cert, &key, na);
        certified_key(&s, "s").unwrap();
        // verify with webpki: the CA as the only root, the Service's DNS name
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["kubegost-webhook.kubegost-system.svc", "127.0.0.1"] {
            verifier
                .verify_server_cert(
                    &leaf,
                    &[],
                    &rustls::pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let now = std::time::SystemTime::now();
        let v = Duration::from_secs(90);
        assert!(!due(now + Duration::from_secs(80), v, now));
        assert!(due(now + Duration::from_secs(20), v, now));
        assert!(due(now - Duration::from_secs(1), v, now));
    }
}
