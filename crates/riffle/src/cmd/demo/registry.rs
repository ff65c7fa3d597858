//! The registry `riffle demo` runs: the fraud example's, carried in the binary, with what
//! the demo adds declared in it, so the copy written beside the data is the whole truth and
//! `riffle training-set` and `riffle validate` run on it without further flags:
//! - where every group's history is: the transactions as they are generated (the
//!   backfill, then the live stream, [`super::history`]), and each batch group's rows as
//!   they were loaded;
//! - `[serve.logging]` of every value served, completed every few seconds;
//! - the store in the demo's folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use riffle_registry::Registry;
use toml::{Table, Value};

/// The fraud example's registry, carried inside the binary.
const FRAUD_REGISTRY: &str = include_str!("../../../../../examples/fraud/riffle.toml");

/// The stream the demo generates (a source of the fraud example).
pub const SOURCE: &str = "transactions";

/// How often the demo's feature log completes a file `riffle validate` can read.
const LOG_ROTATE_AFTER: &str = "10s";

/// The demo's registry, as text (written beside the data) and resolved.
pub struct DemoRegistry {
    pub text: String,
    pub registry: Registry,
    /// The folder the feature log goes to.
    pub log: PathBuf,
}

/// Where a history file of `name` (a source or a group) is kept in `dir`.
pub fn history_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("history").join(format!("{name}.ndjson"))
}

/// The fraud example's registry with the demo's history, logging and store in `dir` (an
/// absolute path: the registry is read from elsewhere).
pub fn demo_registry(dir: &Path) -> anyhow::Result<DemoRegistry> {
    let mut doc: Table =
        toml::from_str(FRAUD_REGISTRY).context("the built-in fraud registry is not TOML")?;
    let path = |p: PathBuf| Value::String(p.display().to_string());
    for source in tables(&mut doc, "sources")? {
        if source.get("name").and_then(Value::as_str) == Some(SOURCE) {
            source.insert("offline".into(), path(history_file(dir, SOURCE)));
        }
    }
    for group in tables(&mut doc, "feature_groups")? {
        let name = group.get("name").and_then(Value::as_str).map(str::to_owned);
        if let (Some(name), false) = (name, group.contains_key("source")) {
            group.insert("offline".into(), path(history_file(dir, &name)));
        }
    }
    let log = dir.join("served-log");
    let mut logging = Table::new();
    logging.insert("sample_rate".into(), Value::Float(1.0));
    logging.insert("path".into(), path(log.clone()));
    logging.insert("rotate_after".into(), LOG_ROTATE_AFTER.into());
    table(&mut doc, "serve")?.insert("logging".into(), Value::Table(logging));
    table(&mut doc, "store")?.insert(
        "url".into(),
        Value::String(format!("embedded:{}", dir.display())),
    );
    let text = format!(
        "# The fraud example's registry (examples/fraud/riffle.toml) as `riffle demo` ran it:\n\
         # every group's history, [serve.logging] and the store are the demo's.\n\n{}",
        toml::to_string(&doc).context("cannot write the demo's registry")?
    );
    let registry = Registry::from_toml(&text)
        .context("the demo's registry is invalid (a bug in this build)")?;
    Ok(DemoRegistry {
        text,
        registry,
        log,
    })
}

fn table<'a>(doc: &'a mut Table, key: &str) -> anyhow::Result<&'a mut Table> {
    doc.get_mut(key)
        .and_then(Value::as_table_mut)
        .with_context(|| format!("the built-in fraud registry has no [{key}]"))
}

fn tables<'a>(
    doc: &'a mut Table,
    key: &str,
) -> anyhow::Result<impl Iterator<Item = &'a mut Table>> {
    let array = doc
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .with_context(|| format!("the built-in fraud registry has no [[{key}]]"))?;
    Ok(array.iter_mut().filter_map(Value::as_table_mut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_has_its_history_and_every_value_is_logged() {
        let dir = Path::new("/data/demo");
        let demo = demo_registry(dir).unwrap();
        let registry = &demo.registry;
        for group in &registry.groups {
            let declared = match group.source {
                Some(s) => registry.sources[s].offline.clone(),
                None => group.offline.clone(),
            };
            assert!(
                declared.is_some_and(|d| d.starts_with("/data/demo/history/")),
                "group {} has no history",
                group.name
            );
        }
        let logging = registry.serve.logging.as_ref().expect("logging on");
        assert_eq!(logging.sample_rate, 1.0);
        assert_eq!(logging.path, dir.join("served-log"));
        assert_eq!(demo.log, logging.path);
        // The text written is the registry run.
        let again = Registry::from_toml(&demo.text).unwrap();
        assert_eq!(again.groups.len(), registry.groups.len());
        assert!(demo.text.starts_with("# The fraud example's registry"));
    }
}
