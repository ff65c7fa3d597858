//! A listener's settings as `[serve]` and `[ingest]` both declare them (`tls_cert`,
//! `tls_key`, `header_read_timeout`, `max_connections`, `max_header_bytes`), resolved once
//! for both, each problem with its path (`serve.tls_key: is required with tls_cert`).

use std::path::PathBuf;

use crate::problems::Problems;
use crate::settings::ListenerSettings;

/// The listener keys of one section, as written.
pub(crate) struct RawListener<'a> {
    pub tls_cert: &'a Option<String>,
    pub tls_key: &'a Option<String>,
    pub header_read_timeout: &'a Option<String>,
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

/// `raw` of section `section` (`serve`, `ingest`) resolved.
pub(crate) fn resolve_listener(
    section: &str,
    raw: RawListener<'_>,
    p: &mut Problems,
) -> ListenerSettings {
    let d = ListenerSettings::default();
    let path = |key: &str, value: &Option<String>, p: &mut Problems| match value.as_deref() {
        Some(text) if text.trim().is_empty() => {
            p.add(
                format!("{section}.{key}"),
                "must name a PEM file, not be empty",
            );
            None
        }
        other => other.map(|t| PathBuf::from(t.trim())),
    };
    let cert = path("tls_cert", raw.tls_cert, p);
    let key = path("tls_key", raw.tls_key, p);
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => {
            p.add(format!("{section}.tls_key"), "is required with tls_cert");
            None
        }
        (None, Some(_)) => {
            p.add(format!("{section}.tls_cert"), "is required with tls_key");
            None
        }
        (None, None) => None,
    };
    let max_connections = raw.max_connections.filter(|&n| {
        if n == 0 {
            p.add(format!("{section}.max_connections"), "must be at least 1");
        }
        n > 0
    });
    let max_header_bytes = raw.max_header_bytes.unwrap_or(d.max_header_bytes);
    if max_header_bytes < 1024 {
        p.add(
            format!("{section}.max_header_bytes"),
            "must be at least 1024",
        );
    }
    ListenerSettings {
        tls,
        header_read_timeout: p.duration(
            &format!("{section}.header_read_timeout"),
            raw.header_read_timeout,
            d.header_read_timeout,
        ),
        max_connections,
        max_header_bytes,
    }
}
