//! The embedded store: in-process, persisted to one file (`<dir>/riffle.redb`) so a restart
//! keeps the data. The default store; no server to run.
//!
//! It mirrors the Redis layout so both behave alike: a key (one per entity) holds one field
//! per group, and the key expires as a whole. Built on `redb` (ACID, crash-safe, pure Rust).
//! Expired keys are invisible to reads at once and removed by a background sweep.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::{Database, ReadableTable, TableDefinition};
use riffle_core::Timestamp;

use crate::error::StoreError;
use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};

/// (key, field) → encoded row.
const FIELDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("fields");
/// key → expiry, ms since epoch.
const EXPIRY: TableDefinition<&str, u64> = TableDefinition::new("expiry");

/// How often expired keys are swept out of the file.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Most keys removed per sweep transaction, so a sweep never blocks writers for long.
const SWEEP_BATCH: usize = 10_000;

pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded(e.to_string())
}

fn now_ms() -> u64 {
    Timestamp::now().millis() as u64
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("riffle.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => err(format!(
                "{} is open in another process (stop it, or use Redis to share a store)",
                path.display()
            )),
            other => err(format!("cannot open {}: {other}", path.display())),
        })?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(FIELDS).map_err(err)?;
        tx.open_table(EXPIRY).map_err(err)?;
        tx.commit().map_err(err)?;
        let db = Arc::new(db);
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("riffle-embedded-sweep".into())
            .spawn(move || sweep_loop(weak))
            .map_err(err)?;
        Ok(Self { db })
    }

    pub(crate) fn read(&self, keys: &[KeyRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let fields = tx.open_table(FIELDS).map_err(err)?;
        let expiry = tx.open_table(EXPIRY).map_err(err)?;
        let now = now_ms();
        keys.iter()
            .map(|k| {
                let alive = expiry
                    .get(k.key.as_str())
                    .map_err(err)?
                    .is_some_and(|at| at.value() > now);
                k.fields
                    .iter()
                    .map(|f| {
                        if !alive {
                            return Ok(None);
                        }
                        Ok(fields
                            .get((k.key.as_str(), f.as_str()))
                            .map_err(err)?
                            .map(|v| v.value().to_vec()))
                    })
                    .collect()
            })
            .collect()
    }

    /// Every field of one key (empty when absent or expired), like `HGETALL`.
    pub(crate) fn read_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let fields = tx.open_table(FIELDS).map_err(err)?;
        let expiry = tx.open_table(EXPIRY).map_err(err)?;
        let alive = expiry
            .get(key)
            .map_err(err)?
            .is_some_and(|at| at.value() > now_ms());
        if !alive {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in fields.range((key, "")..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            let (entry_key, field) = k.value();
            if entry_key != key {
                break;
            }
            out.push((field.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Writes `keys` in order, then removes `deletes`, in one transaction.
    pub(crate) async fn write(
        &self,
        keys: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || write_blocking(&db, &keys, &deletes))
            .await
            .map_err(err)?
    }

    /// Removes some fields of one key, like `HDEL`.
    pub(crate) async fn delete_fields(
        &self,
        key: String,
        names: Vec<String>,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut fields = tx.open_table(FIELDS).map_err(err)?;
                for name in &names {
                    fields.remove((key.as_str(), name.as_str())).map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
        .await
        .map_err(err)?
    }

    /// Removes up to `SWEEP_BATCH` expired keys; returns how many.
    pub fn sweep(&self) -> Result<usize, StoreError> {
        sweep_once(&self.db)
    }
}

fn write_blocking(
    db: &Database,
    keys: &[KeyWrite],
    deletes: &[KeyDelete],
) -> Result<(), StoreError> {
    let now = now_ms();
    let tx = db.begin_write().map_err(err)?;
    {
        let mut fields = tx.open_table(FIELDS).map_err(err)?;
        let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
        for k in keys {
            // A key that had expired starts empty, as in Redis.
            let expired = expiry
                .get(k.key.as_str())
                .map_err(err)?
                .is_some_and(|at| at.value() <= now);
            if expired {
                remove_fields(&mut fields, &k.key)?;
            }
            for (field, bytes) in &k.fields {
                fields
                    .insert((k.key.as_str(), field.as_str()), bytes.as_slice())
                    .map_err(err)?;
            }
            expiry
                .insert(k.key.as_str(), now + k.ttl.as_millis() as u64)
                .map_err(err)?;
        }
        for d in deletes {
            for field in &d.fields {
                fields
                    .remove((d.key.as_str(), field.as_str()))
                    .map_err(err)?;
            }
        }
    }
    tx.commit().map_err(err)
}

fn remove_fields(
    fields: &mut redb::Table<(&str, &str), &[u8]>,
    key: &str,
) -> Result<(), StoreError> {
    let names: Vec<String> = fields
        .range((key, "")..)
        .map_err(err)?
        .map_while(|entry| {
            let (k, _) = entry.ok()?;
            let (entry_key, field) = k.value();
            (entry_key == key).then(|| field.to_owned())
        })
        .collect();
    for name in names {
        fields.remove((key, name.as_str())).map_err(err)?;
    }
    Ok(())
}

fn sweep_once(db: &Database) -> Result<usize, StoreError> {
    let now = now_ms();
    let expired: Vec<String> = {
        let tx = db.begin_read().map_err(err)?;
        let expiry = tx.open_table(EXPIRY).map_err(err)?;
        let mut out = Vec::new();
        for entry in expiry.iter().map_err(err)? {
            let (k, at) = entry.map_err(err)?;
            if at.value() <= now {
                out.push(k.value().to_owned());
                if out.len() >= SWEEP_BATCH {
                    break;
                }
            }
        }
        out
    };
    if expired.is_empty() {
        return Ok(0);
    }
    let tx = db.begin_write().map_err(err)?;
    {
        let mut fields = tx.open_table(FIELDS).map_err(err)?;
        let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
        for key in &expired {
            // Written again since the scan: keep it.
            if expiry
                .get(key.as_str())
                .map_err(err)?
                .is_some_and(|at| at.value() > now)
            {
                continue;
            }
            remove_fields(&mut fields, key)?;
            expiry.remove(key.as_str()).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(expired.len())
}

fn sweep_loop(db: Weak<Database>) {
    loop {
        std::thread::sleep(SWEEP_EVERY);
        let Some(db) = db.upgrade() else { return };
        if let Err(e) = sweep_once(&db) {
            tracing::warn!(error = %e, "embedded store sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(store: &EmbeddedStore, key: &str, field: &str, ttl: Duration) {
        write_blocking(
            &store.db,
            &[KeyWrite {
                key: key.into(),
                fields: vec![(field.into(), vec![1, 2, 3])],
                ttl,
            }],
            &[],
        )
        .unwrap();
    }

    fn read(store: &EmbeddedStore, key: &str, field: &str) -> Option<Vec<u8>> {
        store
            .read(&[KeyRead {
                key: key.into(),
                fields: vec![field.into()],
            }])
            .unwrap()
            .remove(0)
            .remove(0)
    }

    #[test]
    fn data_survives_a_reopen_and_ttls_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            write(&store, "k", "g@1", Duration::from_secs(3600));
            write(&store, "short", "g@1", Duration::from_millis(1));
        }
        // The sweep thread holds only a weak reference: the file is free again.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(read(&store, "k", "g@1"), Some(vec![1, 2, 3]));
        assert_eq!(read(&store, "k", "other@1"), None);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(read(&store, "short", "g@1"), None);
        assert_eq!(store.sweep().unwrap(), 1);
        assert_eq!(store.sweep().unwrap(), 0);
    }
}
