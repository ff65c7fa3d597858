//! Reading a consumer-group member's assignment as the broker reports it (`DescribeGroups`):
//! the `ConsumerProtocolAssignment` bytes of Kafka's consumer protocol.
//!
//! Written by hand because librdkafka hands the bytes over undecoded (`rdkafka`'s
//! `GroupMemberInfo::assignment`) and no maintained crate decodes this one structure
//! without a whole protocol stack. The layout (all versions so far start the same way,
//! big-endian):
//!
//! ```text
//! i16      version
//! i32      topic count, then per topic:
//!   i16    name length, then the name (UTF-8)
//!   i32    partition count, then the partitions (i32 each)
//! …        user data and later fields (ignored)
//! ```

/// The partitions of `topic` in an assignment; `None` when the bytes are not an
/// assignment (truncated, negative counts, bad UTF-8). An empty assignment is `Some([])`.
pub fn partitions_of(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.count()?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = std::str::from_utf8(r.take(len)?).ok()?;
        let n = r.count()?;
        for _ in 0..n {
            let p = r.i32()?;
            if name == topic {
                out.push(p);
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// An array length: non-negative, and no longer than the bytes left could hold.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (name, parts) in topics {
            b.extend_from_slice(&(name.len() as i16).to_be_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        b.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
        b
    }

    #[test]
    fn reads_the_partitions_of_one_topic() {
        let bytes = assignment(&[("other", &[0, 1]), ("tx", &[3, 1])]);
        assert_eq!(partitions_of(&bytes, "tx"), Some(vec![1, 3]));
        assert_eq!(partitions_of(&bytes, "nope"), Some(vec![]));
        assert_eq!(partitions_of(&assignment(&[]), "tx"), Some(vec![]));
    }

    #[test]
    fn garbage_is_refused_never_a_panic() {
        let bytes = assignment(&[("tx", &[0, 1, 2])]);
        // 2 (version) + 4 (count) + 2 + 2 (name) + 4 + 3 × 4 (partitions): the user data
        // after them is ignored, so only cuts before byte 26 are refused.
        for cut in 0..bytes.len() {
            let got = partitions_of(&bytes[..cut], "tx");
            let want = (cut >= 26).then(|| vec![0, 1, 2]);
            assert_eq!(got, want, "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(partitions_of(&huge, "tx"), None);
        let mut negative = bytes;
        negative[2..6].copy_from_slice(&(-3i32).to_be_bytes());
        assert_eq!(partitions_of(&negative, "tx"), None);
    }
}
