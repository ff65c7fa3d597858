//! NDJSON history decoded on every core. A file is read in blocks cut at line ends
//! ([`BLOCK_BYTES`], so memory holds a block, not the file); a block's lines are split among
//! threads, each line decoded by ingest's [`Decoder`] and its values packed
//! ([`crate::packed::pack`]). What each line became is handed back in line order, so the
//! caller judges lateness and arrival exactly as one reader reading line after line would:
//! decoding is the costly part and needs no order, lateness is cheap and needs it.

use std::ops::Range;

use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use riffle_core::{EntityId, Timestamp};
use riffle_ingest::decode::{Decoder, Rejection};

use crate::cores;
use crate::error::OfflineError;
use crate::location::HistoryFile;
use crate::packed;
use crate::read;

/// How much of a file is read and decoded at a time.
pub const BLOCK_BYTES: u64 = 16 << 20;

/// What one line became.
pub enum Line {
    /// An event: its line's number, its entity and time, its values at `at` in the part's
    /// `packed` bytes.
    Event {
        number: usize,
        entity: EntityId,
        time: Timestamp,
        at: u32,
    },
    /// A line that does not decode, with its number in the file (from 1).
    Bad { number: usize, rejection: Rejection },
}

/// A run of consecutive lines decoded: what each became, and their packed values.
pub struct Part {
    pub lines: Vec<Line>,
    pub packed: Vec<u8>,
}

/// Reads `file` block by block, each decoded on `threads` threads, and hands `each` the
/// parts in line order, with the bytes of the block they came from.
pub async fn read(
    store: &dyn ObjectStore,
    file: &HistoryFile,
    decoder: &Decoder,
    threads: usize,
    each: &mut (dyn FnMut(Vec<Part>, u64) -> Result<(), OfflineError> + Send),
) -> Result<(), OfflineError> {
    // Text of an unfinished last line carried into the next block.
    let mut carry: Vec<u8> = Vec::new();
    // The number of the first line of the next text decoded.
    let mut line = 1usize;
    let mut offset = 0u64;
    while offset < file.size {
        let end = (offset + BLOCK_BYTES).min(file.size);
        let read = end - offset;
        let bytes = store
            .get_range(&file.path, offset..end)
            .await
            .map_err(|e| OfflineError::read(&file.url, e))?;
        offset = end;
        let mut text = std::mem::take(&mut carry);
        text.extend_from_slice(&bytes);
        drop(bytes);
        // The whole lines (the last one unfinished unless this is the end of the file).
        let whole = match text.iter().rposition(|&b| b == b'\n') {
            _ if offset == file.size => text.len(),
            Some(newline) => newline + 1,
            None => 0,
        };
        carry = text.split_off(whole);
        let parts = decode(decoder, &text, line, threads)?;
        line += text.iter().filter(|&&b| b == b'\n').count();
        each(parts, read)?;
    }
    Ok(())
}

/// Decodes the lines of `text` (whole lines, the first numbered `first`) on up to `threads`
/// threads, one run of lines each; the parts come back in line order.
pub fn decode(
    decoder: &Decoder,
    text: &[u8],
    first: usize,
    threads: usize,
) -> Result<Vec<Part>, OfflineError> {
    let mut number = first;
    let runs: Vec<(&[u8], usize)> = split(text, threads.max(1))
        .into_iter()
        .map(|run| {
            let (text, start) = (&text[run], number);
            number += text.iter().filter(|&&b| b == b'\n').count();
            (text, start)
        })
        .collect();
    cores::in_order(runs, |(text, start)| decode_run(decoder, text, start))
        .into_iter()
        .collect()
}

/// `text` cut into up to `n` runs of about equal length, each ending at a line end.
fn split(text: &[u8], n: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..=n {
        if start >= text.len() {
            break;
        }
        let end = if i == n {
            text.len()
        } else {
            let aim = (text.len() * i / n).max(start);
            match text[aim..].iter().position(|&b| b == b'\n') {
                Some(p) => aim + p + 1,
                None => text.len(),
            }
        };
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Decodes the lines of one run, the first numbered `first`.
fn decode_run(decoder: &Decoder, text: &[u8], first: usize) -> Result<Part, OfflineError> {
    let mut part = Part {
        lines: Vec::with_capacity(text.len() / 100),
        packed: Vec::with_capacity(text.len() / 2),
    };
    for (number, line) in read::lines(text) {
        let number = first + number - 1;
        part.lines.push(match decoder.decode(line, None) {
            Ok(event) => {
                let at = packed::offset(&part.packed)?;
                packed::pack(&event.fields, &mut part.packed);
                Line::Event {
                    number,
                    entity: event.entity,
                    time: event.time,
                    at,
                }
            }
            Err(rejection) => Line::Bad { number, rejection },
        });
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_at_line_ends_and_cover_the_text() {
        let text = b"aaaa\nbb\n\ncccccc\nd\n";
        for n in 1..8 {
            let runs = split(text, n);
            assert_eq!(runs.first().unwrap().start, 0);
            assert_eq!(runs.last().unwrap().end, text.len());
            for pair in runs.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(text[pair[0].end - 1], b'\n');
            }
        }
    }
}
