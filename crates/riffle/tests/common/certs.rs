//! Certificates minted for a test with rcgen: a CA, and a server certificate for localhost
//! and 127.0.0.1 installed as `tls.crt` and `tls.key` the way a renewal tool writes them.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub type Ca = CertifiedIssuer<'static, KeyPair>;

pub fn mint_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for localhost and 127.0.0.1 signed by `ca`, written (each file renamed into
/// place, as a renewal tool does) as `tls.crt` and `tls.key` in `dir`; the CA as
/// `ca-<name>.pem`.
pub fn install(dir: &Path, ca: &Ca, name: &str) {
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    for (file, text) in [("tls.key", key.serialize_pem()), ("tls.crt", cert.pem())] {
        std::fs::write(dir.join(format!("{file}.new")), text).unwrap();
        std::fs::rename(dir.join(format!("{file}.new")), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join(format!("ca-{name}.pem")), ca.pem()).unwrap();
}
