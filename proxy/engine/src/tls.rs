//! TLS configuration shared by TLS-based listeners, handlers and dialers (engine spec §1.10).
//!
//! * **Server** ([`server_config`]): `certFile` + `keyFile` are loaded; with `caFile` as well,
//!   client certificates are required and verified against it (mutual TLS). Without files the
//!   global default is used: the top-level `tls:` object when it names files, otherwise a
//!   self-signed certificate generated once per process (ECDSA P-256, CN `gost.run`,
//!   O `GOST`, valid one year, marked CA, server+client auth — like GOST).
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
//! tls:                      # global default server certificate
//!   certFile: /etc/gost/cert.pem
//!   keyFile: /etc/gost/key.pem
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
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(file)
        .map_err(|e| BuildError::new(path, format!("cannot read {file:?}: {e}")))?
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
    PrivateKeyDer::from_pem_file(file).map_err(|e| {
        BuildError::new(
            path,
            format!("cannot load a PEM private key (PKCS#8, PKCS#1 or SEC1) from {file:?}: {e}"),
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
}

impl GlobalTls {
    /// Builds the global default from the top-level `tls:` object. Explicitly configured files
    /// must load (GOST HEAD); `commonName`/`organization`/`validity` shape a generated one.
    pub fn build(c: Option<&TlsConfig>) -> Result<GlobalTls, BuildError> {
        let Some(c) = c else {
            return Ok(GlobalTls::default());
        };
        if !c.cert_file.is_empty() || !c.key_file.is_empty() {
            if c.cert_file.is_empty() || c.key_file.is_empty() {
                return Err(BuildError::new(
                    "tls",
                    "certFile and keyFile must be given together",
                ));
            }
            let certs = load_certs("tls.certFile", &c.cert_file)?;
            let key = load_key("tls.keyFile", &c.key_file)?;
            return Ok(GlobalTls {
                certs: Some((certs, Arc::new(key))),
            });
        }
        if c.common_name.is_empty() && c.organization.is_empty() && c.validity.is_none() {
            return Ok(GlobalTls::default());
        }
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
        })
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
            (certs, key, (!c.ca_file.is_empty()).then_some(&c.ca_file))
        }
        None => {
            let (certs, key) = global.cert_and_key()?;
            (certs, key, None)
        }
    };
    let builder = match ca {
        Some(ca) => {
            let roots = roots(&format!("{path}.caFile"), ca)?;
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
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
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn generated_cert_handshake_without_verification() {
        let srv = server_config("t", None, &GlobalTls::default()).unwrap();
        let cli = client_config("c", None, "127.0.0.1:1").unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let s = tokio::spawn(async move {
            let mut s = accept(&srv, Box::new(b), HANDSHAKE_TIMEOUT).await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
        });
        let mut c = connect(&cli, Box::new(a), HANDSHAKE_TIMEOUT).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        c.flush().await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        s.await.unwrap();
    }

    #[tokio::test]
    async fn secure_client_rejects_unknown_server() {
        let srv = server_config("t", None, &GlobalTls::default()).unwrap();
        let tc = TlsConfig {
            secure: true,
            ..Default::default()
        };
        let cli = client_config("c", Some(&tc), "gost.run:443").unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = accept(&srv, Box::new(b), HANDSHAKE_TIMEOUT).await;
        });
        assert!(connect(&cli, Box::new(a), HANDSHAKE_TIMEOUT).await.is_err());
    }

    #[test]
    fn bad_files_and_versions_are_build_errors() {
        let tc = TlsConfig {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ..Default::default()
        };
        let e = server_config("services[s].listener.tls", Some(&tc), &GlobalTls::default())
            .unwrap_err();
        assert_eq!(e.path, "services[s].listener.tls.certFile");
        let tc = TlsConfig {
            options: Some(gost_config::TlsOptionsConfig {
                min_version: "VersionTLS9".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = client_config("n.dialer.tls", Some(&tc), "a:1").unwrap_err();
        assert!(e.msg.contains("VersionTLS9"), "{e}");
    }
}
