//! The one reader of the Prometheus text format in the operator toolkit: `riffle serve`'s
//! `/metrics` as `riffle drill` judges it (counters summed over the series a label filter
//! keeps) and as `riffle check --connect` judges it (families declared, a group's series,
//! histogram quantiles as Prometheus computes them).
//!
//! A [`Scrape`] holds every sample line as (name, labels, value) and every family a
//! `# TYPE` line declares, so a family is seen even before it has a series (a counter
//! nobody has incremented yet).
//!
//! Written by hand rather than with the `prometheus-parse` crate: that crate finds the
//! label text with a regex that stops at the first `}`, so serve's route labels
//! (`endpoint="/v1/features/{entity}/{id}"`) make the whole line unreadable and the read
//! p99 would be lost; it splits label text on `,` and `=` (a value holding either, or an
//! escaped quote, is misread); and it keeps no `# TYPE` line, so a family without series
//! cannot be seen. What ops needs is the series as written, which takes a hundred lines
//! here, with no regex and no clock.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of one scrape, and the families its `# TYPE` lines declare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family names in the order of their `# TYPE` lines.
    pub families: Vec<String>,
}

/// Parses `name{a="x",b="y"} value [timestamp]` lines and `# TYPE name kind` lines; other
/// comments and lines that do not parse are skipped.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(family) = rest.strip_prefix(" TYPE ") {
                if let Some(name) = family.split_whitespace().next() {
                    scrape.families.push(name.to_owned());
                }
            }
        } else if let Some(sample) = parse_sample(line) {
            scrape.samples.push(sample);
        }
    }
    scrape
}

fn parse_sample(line: &str) -> Option<Sample> {
    let i = line.find(['{', ' '])?;
    let (name, rest) = (&line[..i], &line[i..]);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(body) => parse_labels(body)?,
        None => (Vec::new(), rest),
    };
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `a="x",b="y"}` (the text after the `{`): the labels, and the text after the `}`.
fn parse_labels(body: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut key = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '}' => return Some((labels, &body[i + 1..])),
            '=' => {
                if chars.next()?.1 != '"' {
                    return None;
                }
                let value = parse_quoted(&mut chars)?;
                let name = key.trim().trim_start_matches(',').trim().to_owned();
                labels.push((name, value));
                key.clear();
            }
            other => key.push(other),
        }
    }
    None
}

/// Reads a label value up to its closing quote, undoing `\"`, `\\` and `\n`.
fn parse_quoted(chars: &mut std::str::CharIndices<'_>) -> Option<String> {
    let mut value = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => value.push(match chars.next()?.1 {
                'n' => '\n',
                other => other,
            }),
            '"' => return Some(value),
            other => value.push(other),
        }
    }
    None
}

impl Scrape {
    /// Σ of the samples named `name` whose labels include every `(key, value)` of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.named(name)
            .filter(|s| filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    /// True when any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// Whether family `name` (without `_total`) is declared, even with no series yet.
    pub fn has_family(&self, name: &str) -> bool {
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.families.iter().any(|f| f == name)
    }

    /// Whether a series of `name` has label `key="value"`.
    pub fn has_series(&self, name: &str, key: &str, value: &str) -> bool {
        self.named(name).any(|s| s.label(key) == Some(value))
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Quantile `q` of histogram `name` over the series `keep` accepts (buckets summed by
    /// `le`, linear within a bucket, as Prometheus's `histogram_quantile`), with the count
    /// of observations; `None` before any observation, or when a kept bucket has no `le`.
    pub fn quantile(
        &self,
        name: &str,
        keep: &dyn Fn(&Sample) -> bool,
        q: f64,
    ) -> Option<(f64, u64)> {
        let bucket = format!("{name}_bucket");
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        for s in self.named(&bucket).filter(|s| keep(s)) {
            let le = match s.label("le")? {
                "+Inf" => f64::INFINITY,
                other => other.parse().ok()?,
            };
            match by_le.iter_mut().find(|(b, _)| *b == le) {
                Some(entry) => entry.1 += s.value,
                None => by_le.push((le, s.value)),
            }
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = by_le.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, count) in &by_le {
            if count >= rank {
                if le.is_infinite() {
                    return Some((prev.0, total as u64));
                }
                let within = if count > prev.1 {
                    (rank - prev.1) / (count - prev.1)
                } else {
                    1.0
                };
                return Some((prev.0 + (le - prev.0) * within, total as u64));
            }
            prev = (le, count);
        }
        Some((prev.0, total as u64))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_counters_with_labels() {
        let text = "# HELP x y\n# TYPE riffle_breaker_transitions_total counter\n\
            riffle_breaker_transitions_total{from=\"closed\",to=\"open\"} 2\n\
            riffle_breaker_transitions_total{from=\"open\",to=\"half_open\"} 1\n\
            riffle_breaker_state 2\n\
            riffle_values_served_total{group=\"g\",status=\"unavailable\"} 7 1700000000\n\
            weird{a=\"q\\\"x,y\"} 1\n\
            garbage line\n";
        let s = parse(text);
        assert_eq!(
            s.sum("riffle_breaker_transitions_total", &[("to", "open")]),
            2.0
        );
        assert_eq!(s.sum("riffle_breaker_transitions_total", &[]), 3.0);
        assert_eq!(s.sum("riffle_breaker_state", &[]), 2.0);
        assert_eq!(
            s.sum("riffle_values_served_total", &[("status", "unavailable")]),
            7.0
        );
        assert_eq!(s.sum("weird", &[("a", "q\"x,y")]), 1.0);
        assert!(s.has("riffle_breaker_state"));
        assert!(!s.has("garbage"));
    }

    const TEXT: &str = "# TYPE riffle_cache_hits counter\nriffle_cache_hits_total 3\n\
# TYPE riffle_store_call_duration_seconds histogram\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"0.001\"} 50\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"0.002\"} 100\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"+Inf\"} 100\n\
riffle_store_call_duration_seconds_bucket{op=\"write\",le=\"0.001\"} 0\n\
riffle_store_call_duration_seconds_bucket{op=\"write\",le=\"+Inf\"} 7\n";

    #[test]
    fn families_and_quantiles_are_read_like_prometheus() {
        let m = parse(TEXT);
        assert!(m.has_family("riffle_cache_hits_total"));
        assert!(!m.has_family("riffle_cache_misses_total"));
        let read = |s: &Sample| s.label("op") == Some("read");
        let (p50, n) = m
            .quantile("riffle_store_call_duration_seconds", &read, 0.5)
            .unwrap();
        assert_eq!(n, 100);
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let (p99, _) = m
            .quantile("riffle_store_call_duration_seconds", &read, 0.99)
            .unwrap();
        assert!((p99 - 0.00198).abs() < 1e-6, "{p99}");
        assert!(m.has_series("riffle_store_call_duration_seconds_bucket", "op", "write"));
    }

    #[test]
    fn a_route_label_keeps_its_braces() {
        let text = "riffle_http_request_duration_seconds_bucket{endpoint=\"/v1/features/{entity}/{id}\",le=\"0.005\"} 3\n";
        let s = parse(text);
        assert_eq!(
            s.sum(
                "riffle_http_request_duration_seconds_bucket",
                &[("endpoint", "/v1/features/{entity}/{id}"), ("le", "0.005")]
            ),
            3.0
        );
    }

    /// `value` as the text format writes a label value.
    fn escape(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn an_escaped_label_value_reads_back(
            name in "[a-z_][a-z0-9_]{0,20}",
            key in "[a-z_][a-z0-9_]{0,10}",
            value in "\\PC{0,30}",
            n in 0u32..1_000_000,
        ) {
            let line = format!("{name}{{{key}=\"{}\",le=\"+Inf\"}} {n}\n", escape(&value));
            let s = parse(&line);
            prop_assert_eq!(s.samples.len(), 1);
            prop_assert_eq!(s.samples[0].label(&key), Some(value.as_str()));
            prop_assert_eq!(s.sum(&name, &[(key.as_str(), value.as_str())]), f64::from(n));
        }
    }
}
