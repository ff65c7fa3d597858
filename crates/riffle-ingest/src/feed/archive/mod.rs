//! The archive input: events kept as history (Parquet files, or NDJSON or Parquet behind an
//! object-store URL) replayed through the pipeline, for `riffle ingest --from` to backfill a
//! group from the archive before the stream takes over. The archive is read elsewhere
//! (`riffle-offline` reads Parquet and object stores) and handed over as NDJSON objects, one
//! per event in archive order; this input numbers them from 1 as the file input numbers
//! lines, so a re-run over the same archive (same stream id: [`archive_stream_id`]) applies
//! nothing twice.
//!
//! [`archive_stream_id`]: crate::feed::archive_stream_id

use tokio::sync::mpsc;

use super::item::{Feed, Record};

/// What an archive's reader yields: one event as an NDJSON object, or why reading stopped.
pub type ArchiveRecords = Box<dyn Iterator<Item = std::io::Result<Vec<u8>>> + Send>;

/// Sends `records` on a thread of its own as records of `stream`, numbered from 1, in
/// chunks of up to `chunk`; an error ends the stream with `Err`, after the records read
/// before it. The channel's bound is the
/// backpressure.
pub fn spawn_archive_reader(
    records: ArchiveRecords,
    stream: u64,
    chunk: usize,
    capacity: usize,
) -> std::io::Result<mpsc::Receiver<std::io::Result<Feed>>> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    std::thread::Builder::new()
        .name("riffle-ingest-archive".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(chunk);
            for (i, record) in records.enumerate() {
                match record {
                    Ok(payload) => batch.push(Record {
                        stream,
                        offset: i as u64 + 1,
                        partition: None,
                        payload,
                    }),
                    Err(e) => {
                        // What was read before the failure is applied first.
                        if !batch.is_empty() && tx.blocking_send(Ok(Feed::Records(batch))).is_err()
                        {
                            return;
                        }
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                if batch.len() >= chunk {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(chunk));
                    if tx.blocking_send(Ok(Feed::Records(full))).is_err() {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(Ok(Feed::Records(batch)));
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_numbered_in_order_and_an_error_ends_the_stream() {
        let items: Vec<std::io::Result<Vec<u8>>> = vec![
            Ok(b"a".to_vec()),
            Ok(b"b".to_vec()),
            Ok(b"c".to_vec()),
            Err(std::io::Error::other("gone")),
            Ok(b"never".to_vec()),
        ];
        let mut rx = spawn_archive_reader(Box::new(items.into_iter()), 7, 2, 4).unwrap();
        let mut seen = Vec::new();
        let mut ended = None;
        while let Some(item) = rx.blocking_recv() {
            match item {
                Ok(Feed::Records(records)) => seen.extend(records),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => ended = Some(e.to_string()),
            }
        }
        let offsets: Vec<(u64, u64, &[u8])> = seen
            .iter()
            .map(|r| (r.stream, r.offset, r.payload.as_slice()))
            .collect();
        assert_eq!(
            offsets,
            [(7, 1, &b"a"[..]), (7, 2, &b"b"[..]), (7, 3, &b"c"[..])]
        );
        assert_eq!(ended.as_deref(), Some("gone"));
    }
}
