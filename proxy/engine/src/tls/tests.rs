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
    let e =
        server_config("services[s].listener.tls", Some(&tc), &GlobalTls::default()).unwrap_err();
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

/// Writes `cert.pem` + `key.pem` (a server certificate for `localhost` signed by a test CA)
/// into `dir`, and the CA as `name_ca` when given; returns the server certificate DER.
fn write_dir_pki(dir: &std::path::Path, name_ca: Option<&str>) -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    if let Some(n) = name_ca {
        std::fs::write(dir.join(n), ca_cert.pem()).unwrap();
    }
    cert.der().to_vec()
}

#[test]
fn working_directory_files_are_the_default_certificate() {
    let empty = tempfile::tempdir().unwrap();
    let g = GlobalTls::build_in(None, empty.path()).unwrap();
    assert_eq!(g.source(), "generated");
    assert!(!g.requires_client_cert());

    let dir = tempfile::tempdir().unwrap();
    let der = write_dir_pki(dir.path(), None);
    let g = GlobalTls::build_in(None, dir.path()).unwrap();
    assert!(g.source().ends_with("cert.pem"), "{}", g.source());
    assert_eq!(g.cert_and_key().unwrap().0[0].as_ref(), &der[..]);
    assert!(!g.requires_client_cert());
    // An empty `tls:` object (or one only shaping the generated certificate) looks there too.
    let shaped = TlsConfig {
        common_name: "example.test".into(),
        ..Default::default()
    };
    let g = GlobalTls::build_in(Some(&shaped), dir.path()).unwrap();
    assert_eq!(g.cert_and_key().unwrap().0[0].as_ref(), &der[..]);

    // With ca.pem as well, the default config requires client certificates (GOST v3.2.6).
    let mtls = tempfile::tempdir().unwrap();
    write_dir_pki(mtls.path(), Some("ca.pem"));
    assert!(GlobalTls::build_in(None, mtls.path())
        .unwrap()
        .requires_client_cert());
}

#[test]
fn unusable_working_directory_files_fall_back_to_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let g = GlobalTls::build_in(None, dir.path()).unwrap();
    assert_eq!(g.source(), "generated");
    // A key that does not match the certificate is caught as well.
    let other = tempfile::tempdir().unwrap();
    write_dir_pki(dir.path(), None);
    write_dir_pki(other.path(), None);
    std::fs::copy(other.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
    assert_eq!(
        GlobalTls::build_in(None, dir.path()).unwrap().source(),
        "generated"
    );
}

#[test]
fn configured_files_must_load_and_win_over_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_dir_pki(dir.path(), Some("ca.pem"));
    let missing = dir.path().join("missing.pem").display().to_string();
    let cfg = |cert: &str, key: &str, ca: &str| TlsConfig {
        cert_file: cert.into(),
        key_file: key.into(),
        ca_file: ca.into(),
        ..Default::default()
    };
    let e = GlobalTls::build_in(Some(&cfg(&missing, &missing, "")), dir.path()).unwrap_err();
    assert_eq!(e.path, "tls.certFile");
    assert!(e.msg.contains("missing.pem"), "{e}");
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let e = GlobalTls::build_in(Some(&cfg(&cert, &key, &missing)), dir.path()).unwrap_err();
    assert_eq!(e.path, "tls.caFile");
    assert!(e.msg.contains("missing.pem"), "{e}");
    let e = GlobalTls::build_in(Some(&cfg("", "", &cert)), dir.path()).unwrap_err();
    assert_eq!(e.path, "tls");
    // Configured files, no CA: no client certificate required even though ./ca.pem exists.
    let g = GlobalTls::build_in(Some(&cfg(&cert, &key, "")), dir.path()).unwrap();
    assert!(!g.requires_client_cert());
    assert!(g.source().contains("tls.certFile"));
}

#[tokio::test]
async fn default_client_ca_makes_default_listeners_require_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    write_dir_pki(dir.path(), Some("ca.pem"));
    let g = GlobalTls::build_in(None, dir.path()).unwrap();
    let srv = server_config("t", None, &g).unwrap();
    let cli = client_config("c", None, "127.0.0.1:1").unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let s = tokio::spawn(async move { accept(&srv, Box::new(b), HANDSHAKE_TIMEOUT).await });
    // TLS 1.3: the client may finish before the server rejects; the server side must fail.
    let _ = connect(&cli, Box::new(a), HANDSHAKE_TIMEOUT).await;
    assert!(s.await.unwrap().is_err());
}
