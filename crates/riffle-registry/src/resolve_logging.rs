//! `[serve.logging]` resolved: the feature log's sample rate, folder, rotation and queue,
//! each checked with its path (`serve.logging.sample_rate: must be above 0 and at most 1`).

use std::path::PathBuf;

use crate::problems::Problems;
use crate::raw::RawLogging;
use crate::settings::LoggingSettings;

const PATH: &str = "serve.logging";

pub(crate) fn resolve_logging(raw: &RawLogging, p: &mut Problems) -> LoggingSettings {
    let sample_rate = match raw.sample_rate {
        None => {
            p.add(
                format!("{PATH}.sample_rate"),
                "is required (the share of entities logged, such as 0.01)",
            );
            1.0
        }
        Some(r) if r.is_finite() && r > 0.0 && r <= 1.0 => r,
        Some(r) => {
            p.add(
                format!("{PATH}.sample_rate"),
                format!("{r} is not a share of entities: must be above 0 and at most 1"),
            );
            1.0
        }
    };
    let path = match raw.path.as_deref().map(str::trim) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        Some(_) => {
            p.add(format!("{PATH}.path"), "must name a folder, not be empty");
            PathBuf::new()
        }
        None => {
            p.add(
                format!("{PATH}.path"),
                "is required (the local folder the Parquet files go to)",
            );
            PathBuf::new()
        }
    };
    let rotate_rows = raw
        .rotate_rows
        .unwrap_or(LoggingSettings::DEFAULT_ROTATE_ROWS);
    if rotate_rows == 0 {
        p.add(format!("{PATH}.rotate_rows"), "must be at least 1");
    }
    let rotate_after = p.duration(
        &format!("{PATH}.rotate_after"),
        &raw.rotate_after,
        LoggingSettings::DEFAULT_ROTATE_AFTER,
    );
    let queue = raw.queue.unwrap_or(LoggingSettings::DEFAULT_QUEUE);
    if queue == 0 {
        p.add(format!("{PATH}.queue"), "must be at least 1");
    }
    LoggingSettings {
        sample_rate,
        path,
        rotate_rows: rotate_rows.max(1),
        rotate_after,
        queue: queue.max(1),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{LoggingSettings, Registry};

    fn registry(logging: &str) -> Result<Registry, crate::RegistryError> {
        with_serve(&format!("[serve.logging]\n{logging}"))
    }

    fn with_serve(serve: &str) -> Result<Registry, crate::RegistryError> {
        Registry::from_toml(&format!(
            r#"
{serve}

[[entities]]
name = "user"

[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "30s"
staleness_limit = "10m"
features = [{{ name = "n", type = "int64", default = 0 }}]
"#
        ))
    }

    #[test]
    fn no_section_logs_nothing() {
        let r = with_serve("[serve]\nmax_batch = 10").unwrap();
        assert_eq!(r.serve.logging, None);
    }

    #[test]
    fn a_section_resolves_with_defaults() {
        let r = registry("sample_rate = 0.01\npath = \"served-log\"").unwrap();
        assert_eq!(
            r.serve.logging,
            Some(LoggingSettings {
                sample_rate: 0.01,
                path: "served-log".into(),
                rotate_rows: LoggingSettings::DEFAULT_ROTATE_ROWS,
                rotate_after: LoggingSettings::DEFAULT_ROTATE_AFTER,
                queue: LoggingSettings::DEFAULT_QUEUE,
            })
        );
        let r = registry(
            "sample_rate = 1.0\npath = \"x\"\nrotate_rows = 500\nrotate_after = \"30s\"\nqueue = 8",
        )
        .unwrap();
        let l = r.serve.logging.unwrap();
        assert_eq!(
            (l.rotate_rows, l.rotate_after, l.queue),
            (500, Duration::from_secs(30), 8)
        );
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let cases = [
            (
                "sample_rate = 0.0\npath = \"x\"",
                "serve.logging.sample_rate: 0 is not a share",
            ),
            (
                "sample_rate = 1.5\npath = \"x\"",
                "serve.logging.sample_rate: 1.5 is not a share",
            ),
            (
                "sample_rate = -0.1\npath = \"x\"",
                "serve.logging.sample_rate: -0.1",
            ),
            (
                "sample_rate = nan\npath = \"x\"",
                "serve.logging.sample_rate: NaN",
            ),
            ("path = \"x\"", "serve.logging.sample_rate: is required"),
            ("sample_rate = 0.5", "serve.logging.path: is required"),
            (
                "sample_rate = 0.5\npath = \" \"",
                "serve.logging.path: must name a folder",
            ),
        ];
        for (text, expect) in cases {
            let err = registry(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
        // Every problem at once.
        let err = registry(
            "sample_rate = 2.0\npath = \"x\"\nrotate_rows = 0\nrotate_after = \"soon\"\nqueue = 0",
        )
        .unwrap_err();
        let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "serve.logging.sample_rate",
                "serve.logging.rotate_rows",
                "serve.logging.rotate_after",
                "serve.logging.queue",
            ]
        );
        // Unknown knobs are refused by name.
        let err = registry("sample_rate = 0.5\npath = \"x\"\nrate = 1").unwrap_err();
        assert!(err.to_string().contains("rate"), "{err}");
    }
}
