//! `riffle serve` over TLS through the real binary: a client trusting the test CA is served
//! (and Riffle's own, `riffle baseline save --cacert`), one that does not is refused, plain
//! HTTP to the TLS port gets no byte, and a certificate renewed in place (another CA) is
//! served to new connections without a restart (that a connection opened before keeps
//! working is tested in `riffle-listener`, where its idle time is under control).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::certs::{install, mint_ca};
use common::{fraud_config, Running, TestCommand};

/// `GET /health` over a fresh connection trusting only `ca`'s certificate: the status, or
/// why there was none.
fn health(base: &str, dir: &Path, ca: &str) -> Result<u16, String> {
    let pem = std::fs::read(dir.join(format!("ca-{ca}.pem"))).unwrap();
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("{base}/health"))
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// `riffle baseline save --cacert` against the https server trusting `ca`: exit code and
/// stderr.
fn save(base: &str, dir: &Path, ca: &str) -> (Option<i32>, String) {
    let out = TestCommand::new()
        .args([
            "baseline",
            "save",
            "--timeout",
            "5s",
            "--target",
            base,
            "--out",
        ])
        .arg(dir.join("baseline.json"))
        .arg("--config")
        .arg(fraud_config())
        .arg("--cacert")
        .arg(dir.join(format!("ca-{ca}.pem")))
        .output();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn https_with_the_test_ca_and_a_renewed_certificate_without_a_restart() {
    let mut cmd = TestCommand::new();
    let dir = cmd.dir().to_path_buf();
    let (first, second) = (mint_ca("first CA"), mint_ca("second CA"));
    install(&dir, &first, "first");
    std::fs::write(dir.join("ca-second.pem"), second.pem()).unwrap();
    let port = riffle_testkit::free_port();
    let base = format!("https://127.0.0.1:{port}");
    let log = dir.join("serve.log");
    let child = cmd
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(fraud_config())
        .args([
            "--store",
            "embedded:./data",
            "--tls-cert",
            "tls.crt",
            "--tls-key",
            "tls.key",
        ])
        .spawn_logged(&log);
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&base, &dir, "first") != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "https never answered:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains(&format!("https://127.0.0.1:{port}")));
    // A client that trusts another CA is refused.
    assert!(health(&base, &dir, "second").is_err());
    // Riffle's own clients speak https with --cacert: reads sampled, then a baseline saved.
    let pem = std::fs::read(dir.join("ca-first.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    for i in 0..64 {
        let url = format!("{base}/v1/features/user/u{i}?groups=user_profile");
        assert_eq!(client.get(url).send().unwrap().status().as_u16(), 200);
    }
    let (code, stderr) = save(&base, &dir, "first");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = save(&base, &dir, "second");
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("certificate")
            || stderr.contains("unreachable")
            || stderr.contains("error"),
        "{stderr}"
    );

    // Plain HTTP to the TLS port: not one byte back.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(got.is_empty(), "plain HTTP got {} bytes", got.len());

    // Renewed in place by another CA: served without a restart (files checked every 5 s).
    install(&dir, &second, "second");
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&base, &dir, "second") != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(health(&base, &dir, "first").is_err());
}
