//! `compare`: asks two servers (`--live`, `--oracle`) for the same users' stream groups
//! with `POST /v1/features` in batches, both answers taken back to back, and compares
//! every value; a user that differs is asked again once after `--retry-wait-ms` (windows
//! move as tiles pass, and the live server's hot cache holds a value up to its group's
//! `cache_ttl`). Prints the mismatches with a few examples.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The live server's base URL.
    #[arg(long)]
    live: String,
    /// The oracle server's base URL.
    #[arg(long)]
    oracle: String,
    /// The entity the users are of.
    #[arg(long)]
    entity: String,
    /// The stream groups, comma-separated.
    #[arg(long)]
    groups: String,
    /// Users per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Mismatches (and errors) printed as examples.
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// The wait before a differing user is asked again.
    #[arg(long, default_value_t = 2500)]
    retry_wait_ms: u64,
    /// The users to compare, one id per line.
    #[arg(long)]
    ids: String,
}

/// One user's answer: (group, feature) → (value, status).
type Answer = BTreeMap<(String, String), (Value, String)>;

/// `POST /v1/features` for `ids`: one answer per id, in order.
fn features(
    client: &reqwest::blocking::Client,
    base: &str,
    entity: &str,
    groups: &[String],
    ids: &[String],
) -> anyhow::Result<Vec<Answer>> {
    let body = serde_json::json!({ "entity": entity, "ids": ids, "groups": groups });
    let response = client
        .post(format!("{base}/v1/features"))
        .json(&body)
        .send()?;
    let code = response.status();
    let value: Value = response.json()?;
    if !code.is_success() {
        bail!("{base}: HTTP {code}: {value}");
    }
    let results = value["results"]
        .as_array()
        .ok_or_else(|| anyhow!("{base}: no results in {value}"))?;
    if results.len() != ids.len() {
        bail!("{base}: {} results for {} ids", results.len(), ids.len());
    }
    let mut out = Vec::with_capacity(ids.len());
    for (result, id) in results.iter().zip(ids) {
        if let Some(got) = result["id"].as_str() {
            if got != id {
                bail!("{base}: answer for {got} where {id} was asked");
            }
        }
        let mut answer = Answer::new();
        for group in result["groups"].as_array().into_iter().flatten() {
            let name = group["group"].as_str().unwrap_or_default().to_owned();
            for (feature, v) in group["features"].as_object().into_iter().flatten() {
                answer.insert(
                    (name.clone(), feature.clone()),
                    (
                        v["value"].clone(),
                        v["status"].as_str().unwrap_or_default().to_owned(),
                    ),
                );
            }
        }
        out.push(answer);
    }
    Ok(out)
}

/// The features whose values differ, as `group:feature live=… (status) oracle=… (status)`.
fn differences(live: &Answer, oracle: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&(String, String)> =
        live.keys().chain(oracle.keys()).collect();
    for key in keys {
        let (l, o) = (live.get(key), oracle.get(key));
        let same = match (l, o) {
            (Some((lv, _)), Some((ov, _))) => lv == ov,
            _ => false,
        };
        if !same {
            let show = |a: Option<&(Value, String)>| {
                a.map_or("absent".to_owned(), |(v, s)| format!("{v}({s})"))
            };
            out.push(format!(
                "{}:{} live={} oracle={}",
                key.0,
                key.1,
                show(l),
                show(o)
            ));
        }
    }
    out
}

/// Values equal but statuses not (e.g. `fresh` against `stale`): reported, not a mismatch.
fn status_differs(live: &Answer, oracle: &Answer) -> bool {
    live.iter()
        .any(|(k, (_, s))| oracle.get(k).is_some_and(|(_, os)| os != s))
}

pub fn compare(args: &Args) -> anyhow::Result<()> {
    let live = args.live.trim_end_matches('/').to_owned();
    let oracle = args.oracle.trim_end_matches('/').to_owned();
    let entity = args.entity.clone();
    let groups: Vec<String> = args
        .groups
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let batch = args.batch;
    let max_examples = args.examples;
    let retry_wait = Duration::from_millis(args.retry_wait_ms);
    let ids_path = args.ids.as_str();
    let ids: Vec<String> =
        std::io::BufReader::new(std::fs::File::open(ids_path).context(ids_path.to_owned())?)
            .lines()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let mut suspects: Vec<String> = Vec::new();
    let mut errors = 0u64;
    let mut error_examples: Vec<String> = Vec::new();
    let mut values = 0u64;
    let mut status_diffs = 0u64;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_progress = Instant::now();
    for (n, chunk) in ids.chunks(batch.max(1)).enumerate() {
        let answers = features(&client, &live, &entity, &groups, chunk)
            .and_then(|l| Ok((l, features(&client, &oracle, &entity, &groups, chunk)?)));
        match answers {
            Ok((l, o)) => {
                for ((id, la), oa) in chunk.iter().zip(&l).zip(&o) {
                    values += la.len() as u64;
                    for (_, s) in la.values() {
                        *statuses.entry(format!("live:{s}")).or_default() += 1;
                    }
                    for (_, s) in oa.values() {
                        *statuses.entry(format!("oracle:{s}")).or_default() += 1;
                    }
                    if !differences(la, oa).is_empty() {
                        suspects.push(id.clone());
                    } else if status_differs(la, oa) {
                        status_diffs += 1;
                    }
                }
            }
            Err(e) => {
                errors += chunk.len() as u64;
                if error_examples.len() < max_examples {
                    error_examples.push(format!("batch {n}: {e:#}"));
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "compare: {} of {} users, {} differ so far",
                ((n + 1) * batch).min(ids.len()),
                ids.len(),
                suspects.len()
            );
            last_progress = Instant::now();
        }
    }
    let first_pass = suspects.len();
    // Once more, after the hot cache's longest TTL: a window that moved between the two
    // answers of the first pass agrees now.
    let mut mismatches: Vec<(String, Vec<String>)> = Vec::new();
    if !suspects.is_empty() {
        std::thread::sleep(retry_wait);
        for chunk in suspects.chunks(batch.max(1)) {
            let answers = features(&client, &live, &entity, &groups, chunk)
                .and_then(|l| Ok((l, features(&client, &oracle, &entity, &groups, chunk)?)));
            match answers {
                Ok((l, o)) => {
                    for ((id, la), oa) in chunk.iter().zip(&l).zip(&o) {
                        let diff = differences(la, oa);
                        if !diff.is_empty() {
                            mismatches.push((id.clone(), diff));
                        }
                    }
                }
                Err(e) => {
                    errors += chunk.len() as u64;
                    if error_examples.len() < max_examples {
                        error_examples.push(format!("retry: {e:#}"));
                    }
                }
            }
        }
    }
    let features_differing: u64 = mismatches.iter().map(|(_, d)| d.len() as u64).sum();
    let mut by_feature: BTreeMap<String, u64> = BTreeMap::new();
    for (_, diffs) in &mismatches {
        for d in diffs {
            let name = d.split(' ').next().unwrap_or_default().to_owned();
            *by_feature.entry(name).or_default() += 1;
        }
    }
    let joined = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    println!(
        "compared={} values={values} first_pass_differ={first_pass} mismatches={} features_differing={features_differing} errors={errors} status_only_differ={status_diffs} compare_secs={:.1}",
        ids.len(),
        mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    println!("mismatch_by_feature={}", joined(&by_feature));
    println!("statuses={}", joined(&statuses));
    for (id, diffs) in mismatches.iter().take(max_examples) {
        println!("example={id}: {}", diffs.join("; "));
    }
    for e in &error_examples {
        println!("error_example={}", e.replace('\n', " "));
    }
    Ok(())
}
