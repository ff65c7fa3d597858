//! Just enough of the Prometheus text format to read `riffle serve`'s `/metrics`: samples
//! as (name, labels, value), summed over the series that match a label filter.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

/// Parses `name{a="x",b="y"} value [timestamp]` lines; comments and lines that do not parse
/// are skipped.
pub fn parse(text: &str) -> Scrape {
    let samples = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_line)
        .collect();
    Scrape { samples }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => (&line[..i], &line[i..]),
        None => return None,
    };
    let mut labels = Vec::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = None;
        let mut key = String::new();
        let mut in_value = false;
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            if in_value {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(match n {
                                'n' => '\n',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        labels.push((
                            key.trim().trim_start_matches(',').trim().to_owned(),
                            std::mem::take(&mut value),
                        ));
                        key.clear();
                        in_value = false;
                    }
                    other => value.push(other),
                }
            } else {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '=' => {
                        if let Some((_, '"')) = chars.next() {
                            in_value = true;
                        } else {
                            return None;
                        }
                    }
                    other => key.push(other),
                }
            }
        }
        &body[end? + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
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

impl Scrape {
    /// Σ of the samples named `name` whose labels include every `(key, value)` of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// True when any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
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
}
