//! TLS configuration shared by TLS-based listeners, handlers and dialers (engine spec §1.10).
//!
//! * **Server** ([`server_config`]): `certFile` + `keyFile` are loaded; with `caFile` as well,
//!   client certificates are required and verified against it (mutual TLS). Without files the
//!   global default is used ([`GlobalTls`]), chosen like GOST v3.2.6/HEAD:
//!   1. the files named by the top-level `tls:` object (`certFile` + `keyFile`, optional
//!      `caFile`); they must load, else the configuration is refused with an error naming
//!      the key and the file (HEAD);
//!   2. with no files configured (or no `tls:` at all): `cert.pem` + `key.pem` in the working
//!      directory when both exist, plus `ca.pem` when present; unusable files are skipped with
//!      a warning (v3.2.6);
//!   3. otherwise a self-signed certificate (ECDSA P-256, CN `gost.run`, O `GOST`, valid one
//!      year, marked CA, server+client auth — like GOST), shaped by `commonName`,
//!      `organization` and `validity` when given, else generated once per process.
//!
//!   A default CA (`tls.caFile`, or `ca.pem` beside the working-directory pair) makes every
//!   listener using the default certificate require client certificates signed by it, as
//!   GOST's cloned default config does. Divergence: HEAD's persisted certificate
//!   (`$HOME/.gost/auto-ca-*.pem`) is neither read nor written, and HEAD ignores `ca.pem`.
//! * **Client** ([`client_config`]): GOST does not verify the server unless `secure: true`.
//!   With `secure: true` the certificate is verified against `caFile` (or the bundled-less
//!   empty root store, i.e. `caFile` is then required in practice) including the host name.
//!   With `caFile` but `secure: false` the chain is verified against the CA but the name is not
//!   checked (GOST's manual verification). Otherwise nothing is verified. `certFile`/`keyFile`
//!   present a client certificate. SNI = `serverName`, else the node host when it is a name.
//! * `options.minVersion` / `maxVersion` (`VersionTLS12`, `VersionTLS13`) and `options.alpn`
//!   are honoured; `options.cipherSuites` is accepted and ignored with a warning (rustls only
//!   offers modern suites). Divergence: TLS 1.0/1.1 are not available.
//!
//! ```yaml
//! tls:                      # global default server certificate (default: ./cert.pem + ./key.pem)
//!   certFile: /etc/gost/cert.pem
//!   keyFile: /etc/gost/key.pem
//!   caFile: /etc/gost/ca.pem  # optional: listeners using the default require client certs
//! services:
//! - name: tls
//!   addr: :8443
//!   handler: {type: http}
//!   listener:
//!     type: tls
//!     tls: {certFile: cert.pem, keyFile: key.pem, caFile: clients-ca.pem}   # mTLS
//! ```

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gost_config::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::BuildError;
use crate::io::BoxStream;

/// Default TLS handshake timeout.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Client TLS: the rustls config plus the server name to send.
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls client config.
    pub config: Arc<ClientConfig>,
    /// SNI / verification name.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(
    path: &str,
    c: Option<&TlsConfig>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, BuildError> {
    let Some(o) = c.and_then(|c| c.options.as_ref()) else {
        return Ok(vec![&rustls::version::TLS12, &rustls::version::TLS13]);
    };
    if !o.cipher_suites.is_empty() {
        tracing::warn!(path = %path, "tls.options.cipherSuites is ignored (rustls offers only modern suites)");
    }
    let rank = |field: &str, v: &str| -> Result<Option<u8>, BuildError> {
        match v {
            "" => Ok(None),
            "VersionTLS12" => Ok(Some(12)),
            "VersionTLS13" => Ok(Some(13)),
            "VersionTLS10" | "VersionTLS11" => Err(BuildError::new(
                format!("{path}.options.{field}"),
                format!("{v:?} is not supported (accepted: VersionTLS12, VersionTLS13)"),
            )),
            other => Err(BuildError::new(
                format!("{path}.options.{field}"),
                format!("unknown TLS version {other:?} (accepted: VersionTLS12, VersionTLS13)"),
            )),
        }
    };
    let min = rank("minVersion", &o.min_version)?.unwrap_or(12);
    let max = rank("maxVersion", &o.max_version)?.unwrap_or(13);
    let mut v: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= 12 && max >= 12 {
        v.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        v.push(&rustls::version::TLS13);
    }
    if v.is_empty() {
        return Err(BuildError::new(
            format!("{path}.options"),
            format!(
                "minVersion {:?} is above maxVersion {:?}",
                o.min_version, o.max_version
            ),
        ));
    }
    Ok(v)
}

fn alpn(c: Option<&TlsConfig>) -> Vec<Vec<u8>> {
    c.and_then(|c| c.options.as_ref())
        .map(|o| o.alpn.iter().map(|a| a.as_bytes().to_vec()).collect())
        .unwrap_or_default()
}

fn load_certs(path: &str, file: &str) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let pem = crate::files::read(file)
        .map_err(|e| BuildError::new(path, format!("cannot read {file:?}: {e}")))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.into_owned()))
        .collect();
    let certs = certs.map_err(|e| BuildError::new(path, format!("bad PEM in {file:?}: {e}")))?;
    if certs.is_empty() {
        return Err(BuildError::new(
            path,
            format!("{file:?} contains no PEM certificate"),
        ));
    }
    Ok(certs)
}

fn load_key(path: &str, file: &str) -> Result<PrivateKeyDer<'static>, BuildError> {
    let pem = crate::files::read(file)
        .map_err(|e| BuildError::new(path, format!("cannot read {file:?}: {e}")))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map(|k| k.clone_key())
        .map_err(|e| {
            BuildError::new(
                path,
                format!(
                    "cannot load a PEM private key (PKCS#8, PKCS#1 or SEC1) from {file:?}: {e}"
                ),
            )
        })
}

fn roots(path: &str, file: &str) -> Result<RootCertStore, BuildError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path, file)? {
        store
            .add(c)
            .map_err(|e| BuildError::new(path, format!("bad CA certificate in {file:?}: {e}")))?;
    }
    Ok(store)
}

/// The certificate and key generated for this process (GOST's default certificate).
fn generated() -> Result<&'static (Vec<CertificateDer<'static>>, Vec<u8>), BuildError> {
    static CELL: OnceLock<(Vec<CertificateDer<'static>>, Vec<u8>)> = OnceLock::new();
    if let Some(v) = CELL.get() {
        return Ok(v);
    }
    let v = generate("gost.run", "GOST", Duration::from_secs(365 * 24 * 3600))
        .map_err(|e| BuildError::new("tls", format!("cannot generate a certificate: {e}")))?;
    Ok(CELL.get_or_init(|| v))
}

/// Generates a self-signed CA+server+client certificate: (chain, PKCS#8 key DER).
pub fn generate(
    cn: &str,
    org: &str,
    validity: Duration,
) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut p = rcgen::CertificateParams::new(vec![cn.to_string()])?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now;
    p.not_after = now + validity;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.self_signed(&key)?;
    Ok((vec![cert.der().clone()], key.serialize_der()))
}

/// The global default `tls:` object turned into a certificate source.
#[derive(Debug, Clone, Default)]
pub struct GlobalTls {
    certs: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// Client CA: TLS listeners using the default certificate require client certificates
    /// signed by it (GOST clones its default config, `ClientCAs` included).
    client_ca: Option<Arc<RootCertStore>>,
    /// Where the certificate came from (for logs).
    source: String,
}

impl GlobalTls {
    /// Builds the global default from the top-level `tls:` object, looking for the
    /// working-directory files in the process's current directory.
    pub fn build(c: Option<&TlsConfig>) -> Result<GlobalTls, BuildError> {
        let g = GlobalTls::build_in(c, std::path::Path::new("."))?;
        tracing::debug!(source = %g.source(), "global TLS certificate");
        Ok(g)
    }

    /// [`GlobalTls::build`] with the working directory given explicitly:
    /// 1. files configured in `tls:` (`certFile` + `keyFile`, optional `caFile`) must load, else
    ///    the error names the key and the file (GOST HEAD);
    /// 2. otherwise `cert.pem` + `key.pem` in `dir` when both exist (+ `ca.pem` when present:
    ///    client certificates are then required, GOST v3.2.6); unusable files are skipped
    ///    with a warning;
    /// 3. otherwise a generated certificate: shaped by `commonName`/`organization`/`validity`
    ///    when given, else the one generated once per process.
    pub fn build_in(c: Option<&TlsConfig>, dir: &std::path::Path) -> Result<GlobalTls, BuildError> {
        if let Some(c) =
            c.filter(|c| !c.cert_file.is_empty() || !c.key_file.is_empty() || !c.ca_file.is_empty())
        {
            if c.cert_file.is_empty() || c.key_file.is_empty() {
                return Err(BuildError::new(
                    "tls",
                    "certFile and keyFile must be given together (caFile needs both)",
                ));
            }
            let certs = load_certs("tls.certFile", &c.cert_file)?;
            let key = load_key("tls.keyFile", &c.key_file)?;
            let client_ca = match c.ca_file.as_str() {
                "" => None,
                f => Some(Arc::new(roots("tls.caFile", f)?)),
            };
            return Ok(GlobalTls {
                certs: Some((certs, Arc::new(key))),
                client_ca,
                source: format!("{} (tls.certFile)", c.cert_file),
            });
        }
        if let Some(g) = GlobalTls::from_dir(dir) {
            return Ok(g);
        }
        let Some(c) = c.filter(|c| {
            !c.common_name.is_empty() || !c.organization.is_empty() || c.validity.is_some()
        }) else {
            return Ok(GlobalTls {
                source: "generated".into(),
                ..GlobalTls::default()
            });
        };
        let cn = if c.common_name.is_empty() {
            "gost.run"
        } else {
            &c.common_name
        };
        let org = if c.organization.is_empty() {
            "GOST"
        } else {
            &c.organization
        };
        let validity = c
            .validity
            .map(|d| d.get())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let (certs, key) = generate(cn, org, validity)
            .map_err(|e| BuildError::new("tls", format!("cannot generate a certificate: {e}")))?;
        Ok(GlobalTls {
            certs: Some((certs, Arc::new(PrivateKeyDer::Pkcs8(key.into())))),
            client_ca: None,
            source: format!("generated for {cn}"),
        })
    }

    /// `cert.pem` + `key.pem` (+ `ca.pem`) in `dir`, when present and usable.
    fn from_dir(dir: &std::path::Path) -> Option<GlobalTls> {
        let (cert, key, ca) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        );
        if !crate::files::is_file(&cert) || !crate::files::is_file(&key) {
            return None;
        }
        let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
        let loaded = load_certs("tls", &cert_s).and_then(|c| {
            let k = load_key("tls", &key_s)?;
            // Catch a mismatched pair now rather than at the first handshake.
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| BuildError::new("tls", e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(c.clone(), k.clone_key())
                .map_err(|e| BuildError::new("tls", format!("{cert_s:?} and {key_s:?}: {e}")))?;
            Ok((c, k))
        });
        let (certs, key) = match loaded {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "working-directory cert.pem/key.pem unusable: using a generated certificate");
                return None;
            }
        };
        let client_ca = if crate::files::is_file(&ca) {
            match roots("tls", &ca.display().to_string()) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    tracing::warn!(error = %e, "working-directory ca.pem ignored");
                    None
                }
            }
        } else {
            None
        };
        Some(GlobalTls {
            certs: Some((certs, Arc::new(key))),
            client_ca,
            source: cert_s,
        })
    }

    /// Where the certificate comes from: a file path, or `generated…`.
    pub fn source(&self) -> &str {
        if self.source.is_empty() {
            "generated"
        } else {
            &self.source
        }
    }

    /// Whether TLS listeners using the default certificate require client certificates.
    pub fn requires_client_cert(&self) -> bool {
        self.client_ca.is_some()
    }

    fn cert_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), BuildError> {
        if let Some((c, k)) = &self.certs {
            return Ok((c.clone(), k.clone_key()));
        }
        let (c, k) = generated()?;
        Ok((c.clone(), PrivateKeyDer::Pkcs8(k.clone().into())))
    }
}

/// Builds a server config from a listener/handler `tls` object at `path`, falling back to the
/// global default certificate.
pub fn server_config(
    path: &str,
    c: Option<&TlsConfig>,
    global: &GlobalTls,
) -> Result<Arc<ServerConfig>, BuildError> {
    let vers = versions(path, c)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&vers)
        .map_err(|e| BuildError::new(path, e.to_string()))?;
    let own = c.filter(|c| !c.cert_file.is_empty() || !c.key_file.is_empty());
    let (certs, key, ca) = match own {
        Some(c) => {
            if c.cert_file.is_empty() || c.key_file.is_empty() {
                return Err(BuildError::new(
                    path,
                    "certFile and keyFile must be given together",
                ));
            }
            let certs = load_certs(&format!("{path}.certFile"), &c.cert_file)?;
            let key = load_key(&format!("{path}.keyFile"), &c.key_file)?;
            let ca = match c.ca_file.as_str() {
                "" => None,
                f => Some(Arc::new(roots(&format!("{path}.caFile"), f)?)),
            };
            (certs, key, ca)
        }
        None => {
            let (certs, key) = global.cert_and_key()?;
            (certs, key, global.client_ca.clone())
        }
    };
    let builder = match ca {
        Some(roots) => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| BuildError::new(format!("{path}.caFile"), e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        BuildError::new(
            format!("{path}.certFile"),
            format!("certificate and key do not match or are unusable: {e}"),
        )
    })?;
    cfg.alpn_protocols = alpn(c);
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate (GOST's default `InsecureSkipVerify`), but still checks the
/// handshake signatures; with `roots`, the chain is verified while the name is not.
#[derive(Debug)]
struct LaxVerifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(v) = &self.chain {
            match v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(ok) => return Ok(ok),
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds a client config from a connector/dialer `tls` object; `node_addr` gives the SNI
/// default.
pub fn client_config(
    path: &str,
    c: Option<&TlsConfig>,
    node_addr: &str,
) -> Result<ClientTls, BuildError> {
    let vers = versions(path, c)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&vers)
        .map_err(|e| BuildError::new(path, e.to_string()))?;
    let secure = c.is_some_and(|c| c.secure);
    let ca = c.map(|c| c.ca_file.as_str()).filter(|f| !f.is_empty());
    let roots = match ca {
        Some(f) => Some(Arc::new(roots(&format!("{path}.caFile"), f)?)),
        None => None,
    };
    let builder = if secure {
        let roots = roots.unwrap_or_else(|| Arc::new(RootCertStore::empty()));
        builder.with_root_certificates(roots)
    } else {
        let chain = match roots {
            Some(r) => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(r, provider())
                    .build()
                    .map_err(|e| BuildError::new(format!("{path}.caFile"), e.to_string()))?,
            ),
            None => None,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LaxVerifier {
                provider: provider(),
                chain,
            }))
    };
    let own = c.filter(|c| !c.cert_file.is_empty() || !c.key_file.is_empty());
    let mut cfg = match own {
        Some(c) => {
            if c.cert_file.is_empty() || c.key_file.is_empty() {
                return Err(BuildError::new(
                    path,
                    "certFile and keyFile must be given together",
                ));
            }
            let certs = load_certs(&format!("{path}.certFile"), &c.cert_file)?;
            let key = load_key(&format!("{path}.keyFile"), &c.key_file)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                BuildError::new(
                    format!("{path}.certFile"),
                    format!("client certificate and key are unusable: {e}"),
                )
            })?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn(c);
    let configured = c.map(|c| c.server_name.as_str()).unwrap_or("");
    let host = crate::addr::split_host_port(node_addr)
        .map(|(h, _)| h)
        .unwrap_or(node_addr);
    let name = if configured.is_empty() {
        host
    } else {
        configured
    };
    let server_name = ServerName::try_from(name.to_string())
        .or_else(|_| ServerName::try_from("localhost".to_string()))
        .map_err(|e| {
            BuildError::new(
                format!("{path}.serverName"),
                format!("invalid server name {name:?}: {e}"),
            )
        })?;
    Ok(ClientTls {
        config: Arc::new(cfg),
        server_name,
    })
}

/// Runs a client handshake over `conn` (bounded by `timeout`).
pub async fn connect(tls: &ClientTls, conn: BoxStream, timeout: Duration) -> io::Result<BoxStream> {
    let c = TlsConnector::from(Arc::clone(&tls.config));
    let s = tokio::time::timeout(timeout, c.connect(tls.server_name.clone(), conn))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Box::new(s))
}

/// Runs a server handshake over `conn` (bounded by `timeout`).
pub async fn accept(
    cfg: &Arc<ServerConfig>,
    conn: BoxStream,
    timeout: Duration,
) -> io::Result<BoxStream> {
    let a = TlsAcceptor::from(Arc::clone(cfg));
    let s = tokio::time::timeout(timeout, a.accept(conn))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Box::new(s))
}

#[cfg(test)]
mod tests;
