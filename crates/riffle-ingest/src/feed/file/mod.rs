//! The file input: numbered NDJSON lines of a file or stdin (`riffle ingest --from`), read
//! on a thread of its own, optionally following the file as it grows (`--follow`) and
//! saying when it reached the end.

use std::io::{BufRead, BufReader, Read};

use tokio::sync::mpsc;

use super::item::{Feed, Record};

/// Reads `input` line by line on a thread as records of `stream`, sending non-blank lines
/// in chunks of up to `chunk` (a chunk is sent early whenever the next read could block: the
/// buffer ran dry); a read error ends the stream with `Err`. The channel's bound is the
/// backpressure. With `follow`, end of file is not the end: the reader polls for appended
/// lines (a partial last line waits for its newline) until the receiver is dropped, and
/// each time it reaches the end after reading lines (and once at the start if the file is
/// empty) it sends [`Feed::CaughtUp`].
pub fn spawn_reader(
    input: Box<dyn Read + Send>,
    stream: u64,
    follow: bool,
    chunk: usize,
    capacity: usize,
) -> std::io::Result<mpsc::Receiver<std::io::Result<Feed>>> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    std::thread::Builder::new()
        .name("riffle-ingest-reader".into())
        .spawn(move || {
            let mut input = BufReader::with_capacity(1 << 16, input);
            let mut batch = Vec::with_capacity(chunk);
            let mut number = 0u64;
            let mut buf = Vec::new();
            // Whether the reader is at the end it last told the pipeline about.
            let mut told = false;
            let send = |batch: &mut Vec<Record>| {
                let full = std::mem::replace(batch, Vec::with_capacity(chunk));
                tx.blocking_send(Ok(Feed::Records(full))).is_ok()
            };
            loop {
                match input.read_until(b'\n', &mut buf) {
                    Ok(0) if follow => {
                        if !batch.is_empty() && !send(&mut batch) {
                            return;
                        }
                        if !told {
                            told = true;
                            if tx.blocking_send(Ok(Feed::CaughtUp(vec![stream]))).is_err() {
                                return;
                            }
                        }
                        if tx.is_closed() {
                            return;
                        }
                        std::thread::sleep(FOLLOW_POLL);
                    }
                    Ok(0) => break,
                    Ok(_) if follow && buf.last() != Some(&b'\n') => {
                        // A line still being written: wait for the rest of it.
                        std::thread::sleep(FOLLOW_POLL);
                    }
                    Ok(_) => {
                        told = false;
                        number += 1;
                        let mut line = std::mem::take(&mut buf);
                        while matches!(line.last(), Some(b'\n' | b'\r')) {
                            line.pop();
                        }
                        if !line.iter().all(u8::is_ascii_whitespace) {
                            batch.push(Record {
                                stream,
                                offset: number,
                                partition: None,
                                payload: line,
                            });
                        }
                        let dry = input.buffer().is_empty();
                        if (batch.len() >= chunk || dry) && !batch.is_empty() && !send(&mut batch) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                send(&mut batch);
            }
        })?;
    Ok(rx)
}

/// How often a followed file is checked for new lines.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    /// The next mark that is not an empty chunk, within a generous deadline.
    fn next(rx: &mut mpsc::Receiver<std::io::Result<Feed>>) -> Feed {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match rx.try_recv() {
                Ok(Ok(Feed::Records(r))) if r.is_empty() => {}
                Ok(feed) => return feed.unwrap(),
                Err(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nothing from the reader"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    #[test]
    fn a_followed_file_says_when_it_is_caught_up_once_per_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson");
        std::fs::write(&path, "a\nb\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut rx = spawn_reader(Box::new(file), 9, true, 16, 4).unwrap();
        let Feed::Records(first) = next(&mut rx) else {
            panic!("records first")
        };
        assert_eq!(first.len(), 2);
        assert_eq!(next(&mut rx), Feed::CaughtUp(vec![9]));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        let Feed::Records(more) = next(&mut rx) else {
            panic!("the appended line")
        };
        assert_eq!((more.len(), more[0].offset), (1, 3));
        assert_eq!(next(&mut rx), Feed::CaughtUp(vec![9]));
        // Idle: no further mark until something new is read.
        std::thread::sleep(Duration::from_millis(500));
        assert!(rx.try_recv().is_err());
    }
}
