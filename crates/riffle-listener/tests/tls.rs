//! TLS on real sockets with certificates minted here: a client trusting only the test CA is
//! served, plain HTTP to the TLS port gets nothing, a renewed certificate (by `reload` or
//! by the file watcher) is served to new connections while one opened before keeps working,
//! a bad renewal keeps the old certificate, load errors name the file, and an HTTP/2
//! listener negotiates ALPN `h2` (refusing a client that offers only `http/1.1`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, read_until_closed, Client, H2Client, Server};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use riffle_listener::{Limits, Protocol, Tls, TlsError};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn mint_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

/// A server certificate for localhost and 127.0.0.1 signed by `ca`: its PEM, its key's PEM,
/// and its DER (to recognise it on the wire). Each has a fresh key and random serial.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn mint_leaf(ca: &Ca) -> Leaf {
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("leaf");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// Writes both files the way a renewal tool should: each to a temporary name, then renamed
/// over the old one.
fn install(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    for (path, text) in [(&key, &leaf.key_pem), (&cert, &leaf.cert_pem)] {
        let temporary = path.with_extension("new");
        std::fs::write(&temporary, text).expect("write");
        std::fs::rename(&temporary, path).expect("rename");
    }
    (cert, key)
}

fn trusting(ca: &Ca) -> TlsConnector {
    offering(ca, b"http/1.1")
}

/// A client trusting `ca` that offers `alpn` only.
fn offering(ca: &Ca, alpn: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("add CA");
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

fn served_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_to_a_client_trusting_the_ca_and_plain_http_gets_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = mint_ca("Riffle test CA");
    let leaf = mint_leaf(&ca);
    let (cert, key) = install(dir.path(), &leaf);
    let tls = Arc::new(Tls::from_pem_files(cert, key).expect("load TLS"));
    let server = Server::start(Limits::default(), Some(tls)).await;

    let stream = connect(&trusting(&ca), server.addr)
        .await
        .expect("handshake");
    assert_eq!(served_leaf(&stream), leaf.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut client = Client::over(stream).await;
    assert_eq!(
        client.get("/").await.expect("https GET"),
        (200, "ok".to_owned())
    );
    assert_eq!(client.get("/").await.expect("keep-alive").0, 200);

    // A client trusting another CA refuses the server: the certificate check is real.
    let stranger = mint_ca("Another CA");
    assert!(connect(&trusting(&stranger), server.addr).await.is_err());

    // Plain HTTP to the TLS port: no response, not a byte, and the connection closed.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain, Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(
        answer,
        Ok(Vec::new()),
        "plain HTTP on the TLS port must be closed without data"
    );
    // The stranger's refusal and the plain-text client.
    eventually("2 failed handshakes", || {
        server.metrics.snapshot().tls_handshakes_failed == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_listener_negotiates_h2_and_serves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = mint_ca("Riffle test CA");
    let leaf = mint_leaf(&ca);
    let (cert, key) = install(dir.path(), &leaf);
    let tls = Arc::new(Tls::from_pem_files(cert, key).expect("load TLS"));
    let server = Server::start_speaking(Protocol::Http2, Limits::default(), Some(tls)).await;

    let stream = connect(&offering(&ca, b"h2"), server.addr)
        .await
        .expect("handshake");
    assert_eq!(served_leaf(&stream), leaf.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = H2Client::over(stream).await;
    assert_eq!(
        client.get("/").await.expect("h2 GET"),
        (200, "ok".to_owned())
    );

    // A client that offers only HTTP/1.1 is refused at the handshake, not misread.
    assert!(connect(&trusting(&ca), server.addr).await.is_err());
    // Plain text (even HTTP/2's preface) to the TLS port: closed without a byte.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain, Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(answer, Ok(Vec::new()));
    eventually("2 failed handshakes", || {
        server.metrics.snapshot().tls_handshakes_failed == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = install(dir.path(), &mint_leaf(&mint_ca("Riffle test CA")));
    let tls = Arc::new(Tls::from_pem_files(cert, key).expect("load TLS"));
    let timeout = Duration::from_secs(1);
    let server = Server::start(
        Limits {
            tls_handshake_timeout: timeout,
            ..Limits::default()
        },
        Some(tls),
    )
    .await;
    // The first byte of a handshake record, then nothing.
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled.write_all(&[0x16]).await.expect("write");
    let opened = Instant::now();
    let closed = read_until_closed(&mut stalled, opened + timeout + Duration::from_secs(2)).await;
    assert!(closed.is_ok(), "a stalled handshake still open");
    assert!(opened.elapsed() >= timeout - Duration::from_millis(300));
    eventually("1 failed handshake", || {
        server.metrics.snapshot().tls_handshakes_failed == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_a_renewed_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_ca = mint_ca("First CA");
    let first = mint_leaf(&first_ca);
    let (cert, key) = install(dir.path(), &first);
    let tls = Arc::new(Tls::from_pem_files(cert, key).expect("load TLS"));
    let server = Server::start(Limits::default(), Some(Arc::clone(&tls))).await;

    let before = connect(&trusting(&first_ca), server.addr)
        .await
        .expect("handshake before");
    assert_eq!(served_leaf(&before), first.der);
    let mut before = Client::over(before).await;
    assert_eq!(before.get("/").await.expect("before the swap").0, 200);

    // Renewed by another CA, so a client can tell by whom it is trusted which one it got.
    let second_ca = mint_ca("Second CA");
    let second = mint_leaf(&second_ca);
    install(dir.path(), &second);
    tls.reload().expect("reload");
    assert_eq!(tls.certificate_chain()[0], second.der);

    let after = connect(&trusting(&second_ca), server.addr)
        .await
        .expect("a new connection trusts the new CA");
    assert_eq!(served_leaf(&after), second.der);
    let mut after = Client::over(after).await;
    assert_eq!(after.get("/").await.expect("after the swap").0, 200);
    assert!(
        connect(&trusting(&first_ca), server.addr).await.is_err(),
        "a new connection was still given the old certificate"
    );

    // The connection opened before the swap goes on as it was.
    for _ in 0..3 {
        assert_eq!(before.get("/").await.expect("kept connection").0, 200);
    }
    assert!(
        !before.closed.is_finished(),
        "the old connection was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_picks_up_new_files_and_keeps_the_old_certificate_on_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = mint_ca("Riffle test CA");
    let first = mint_leaf(&ca);
    let (cert, key) = install(dir.path(), &first);
    let tls = Arc::new(Tls::from_pem_files(&cert, &key).expect("load TLS"));
    let watcher = tls.watch(Duration::from_millis(200));
    let server = Server::start(Limits::default(), Some(Arc::clone(&tls))).await;
    let connector = trusting(&ca);

    let kept = connect(&connector, server.addr).await.expect("handshake");
    let mut kept = Client::over(kept).await;
    assert_eq!(kept.get("/").await.expect("first").0, 200);

    // Same CA, new key and serial: only the bytes on the wire tell them apart.
    let renewed = mint_leaf(&ca);
    install(dir.path(), &renewed);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stream = connect(&connector, server.addr).await.expect("handshake");
        if served_leaf(&stream) == renewed.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not pick up the renewed certificate within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept.get("/").await.expect("kept connection").0, 200);

    // A renewal that does not parse is refused: the one served so far stays.
    std::fs::write(&cert, "not a certificate\n").expect("write");
    let refused = tls.reload().expect_err("a bad file reloaded");
    assert_eq!(
        refused.to_string(),
        format!("tls_cert {}: no certificate found", cert.display())
    );
    tokio::time::sleep(Duration::from_millis(600)).await; // the watcher saw it too
    let stream = connect(&connector, server.addr).await.expect("handshake");
    assert_eq!(served_leaf(&stream), renewed.der);
    assert_eq!(kept.get("/").await.expect("kept connection").0, 200);

    // The watcher ends with the last Arc<Tls>.
    let mut server = server;
    server.stop();
    server.task.await.expect("join").expect("serve");
    drop(tls);
    tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .expect("the watcher outlived its Tls")
        .expect("join");
}

#[test]
fn load_errors_name_the_file_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = mint_ca("Riffle test CA");
    let leaf = mint_leaf(&ca);
    let other = mint_leaf(&ca);
    let (cert, key) = install(dir.path(), &leaf);
    let missing = dir.path().join("missing.crt");
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").expect("write");
    let cert_as_key = dir.path().join("cert-as.key");
    std::fs::write(&cert_as_key, &leaf.cert_pem).expect("write");
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.key_pem).expect("write");

    let error = Tls::from_pem_files(&missing, &key).expect_err("missing cert");
    assert!(matches!(error, TlsError::ReadCert { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("tls_cert {}: ", missing.display())),
        "{error}"
    );

    let error = Tls::from_pem_files(&empty, &key).expect_err("empty cert");
    assert_eq!(
        error.to_string(),
        format!("tls_cert {}: no certificate found", empty.display())
    );

    let error = Tls::from_pem_files(&cert, &cert_as_key).expect_err("cert as key");
    assert_eq!(
        error.to_string(),
        format!("tls_key {}: not a private key", cert_as_key.display())
    );

    let error = Tls::from_pem_files(&cert, &other_key).expect_err("another cert's key");
    assert!(matches!(error, TlsError::Key { .. }), "{error:?}");
}
