//! `riffle baseline save`: fetches the served-value distributions a running `riffle serve`
//! has sampled (`GET /v1/distributions`, see `riffle_serve::drift`) and stores them as the
//! baseline a later `riffle serve --baseline FILE` measures drift (PSI per feature) against.
//! The snapshot is checked before it is written: a server that answers something else, or
//! has sampled nothing yet, is an error rather than an empty baseline.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Why a baseline could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{target} does not answer GET /v1/distributions like riffle serve: {reason}")]
    NotRiffle { target: String, reason: String },
    #[error(
        "{0} has not served any sampled value yet: drive some traffic first (e.g. riffle loadtest)"
    )]
    Empty(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// What was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub features: usize,
    pub samples: u64,
}

/// Fetches the snapshot from `target` (within `timeout`) and writes it to `out`.
/// An https target is trusted by the system's roots and `cacert`'s certificates.
pub async fn save(
    target: &str,
    out: &Path,
    timeout: Duration,
    cacert: Option<&Path>,
) -> Result<Saved, BaselineError> {
    let target = target.trim_end_matches('/');
    let client = crate::http_client::builder(cacert)
        .and_then(|b| {
            b.timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .map_err(|e| e.to_string())
        })
        .map_err(|reason| BaselineError::Unreachable {
            target: target.to_owned(),
            reason,
        })?;
    let unreachable = |e: reqwest::Error| BaselineError::Unreachable {
        target: target.to_owned(),
        reason: crate::loadtest::describe(&e),
    };
    let resp = client
        .get(format!("{target}/v1/distributions"))
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(unreachable)?;
    let not_riffle = |reason: String| BaselineError::NotRiffle {
        target: target.to_owned(),
        reason,
    };
    if !status.is_success() {
        return Err(not_riffle(format!("status {status}")));
    }
    let snap: Value = serde_json::from_slice(&body).map_err(|e| not_riffle(e.to_string()))?;
    let features = snap
        .get("features")
        .and_then(Value::as_array)
        .filter(|_| snap.get("per_octave").is_some() && snap.get("min_exp").is_some())
        .ok_or_else(|| not_riffle("no features/per_octave/min_exp".into()))?;
    let samples: u64 = features
        .iter()
        .filter_map(|f| f.get("count").and_then(Value::as_u64))
        .sum();
    if samples == 0 {
        return Err(BaselineError::Empty(target.to_owned()));
    }
    crate::loadtest::report::write_record(&snap, out).map_err(|reason| BaselineError::Write {
        path: out.display().to_string(),
        reason,
    })?;
    Ok(Saved {
        features: features.len(),
        samples,
    })
}
