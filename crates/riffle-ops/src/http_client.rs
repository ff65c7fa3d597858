//! The one way the operator commands (`loadtest`, `drill`, `check --connect`, `baseline`)
//! build their HTTP client: plain HTTP, or https trusting the system's roots and, with
//! `--cacert PATH`, the certificates of that PEM file (a private CA, a self-signed server).

use std::path::Path;

/// A client builder trusting `cacert`'s certificates beside the system's roots; `Err` says
/// why the file cannot be used.
pub fn builder(cacert: Option<&Path>) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = cacert {
        let pem = std::fs::read(path).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "--cacert {}: no PEM certificate in it",
                path.display()
            ));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}
