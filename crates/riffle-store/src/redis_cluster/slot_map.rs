//! The slot map: which master serves each of the 16,384 hash slots, parsed from
//! `CLUSTER SLOTS`, and the slot of a key (CRC16 of its hash tag).

use redis::Value;

/// Hash slots in a Redis Cluster.
pub(crate) const SLOTS: usize = 16_384;

/// No master known for the slot.
const UNOWNED: u16 = u16::MAX;

/// Which master (`host:port`) serves each slot.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    /// Index into `masters` per slot, or [`UNOWNED`].
    owners: Vec<u16>,
    masters: Vec<String>,
}

impl Default for SlotMap {
    fn default() -> Self {
        Self {
            owners: vec![UNOWNED; SLOTS],
            masters: Vec::new(),
        }
    }
}

impl SlotMap {
    /// The master serving `slot`, if the map knows one.
    pub(crate) fn owner(&self, slot: u16) -> Option<&str> {
        let i = *self.owners.get(slot as usize)?;
        self.masters.get(i as usize).map(String::as_str)
    }

    /// Every master owning at least one slot.
    pub(crate) fn masters(&self) -> &[String] {
        &self.masters
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }

    /// Points one slot at `addr` (a `MOVED` answer), until the next full refresh.
    pub(crate) fn set_owner(&mut self, slot: u16, addr: &str) {
        let Some(entry) = self.owners.get_mut(slot as usize) else {
            return;
        };
        let i = match self.masters.iter().position(|m| m == addr) {
            Some(i) => i,
            None => {
                self.masters.push(addr.to_owned());
                self.masters.len() - 1
            }
        };
        *entry = i as u16;
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replicas…], …]`.
    /// An empty host means "the node you asked" (`asked_host`). `None` when the reply is
    /// not of that shape.
    pub(crate) fn from_cluster_slots(reply: &Value, asked_host: &str) -> Option<Self> {
        let mut map = SlotMap::default();
        let Value::Array(ranges) = reply else {
            return None;
        };
        for range in ranges {
            let Value::Array(parts) = range else {
                return None;
            };
            let (start, end) = (int(parts.first()?)?, int(parts.get(1)?)?);
            let Value::Array(master) = parts.get(2)? else {
                return None;
            };
            let host = text(master.first()?)?;
            let host = if host.is_empty() || host == "?" {
                asked_host.to_owned()
            } else {
                host
            };
            let port = int(master.get(1)?)?;
            if start > end || end >= SLOTS as i64 || start < 0 || !(1..=65_535).contains(&port) {
                return None;
            }
            let addr = format!("{host}:{port}");
            for slot in start..=end {
                map.set_owner(slot as u16, &addr);
            }
        }
        Some(map)
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key's hash tag (the bytes between its
/// first `{` and the next `}`, when not empty), else of the whole key, mod 16,384.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16_xmodem(tagged) % SLOTS as u16
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the variant Redis Cluster uses.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_redis_cluster_spec() {
        // The spec's check value, and slots `CLUSTER KEYSLOT` gives for these keys.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(
            slot_of(b"{user1000}.following"),
            slot_of(b"{user1000}.followers")
        );
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_eq!(slot_of(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % 16384);
        assert_eq!(slot_of(b"foo{{bar}}zap"), crc16_xmodem(b"{bar") % 16384);
        assert_eq!(slot_of(b"fraud:{user:u1}"), slot_of(b"user:u1"));
    }

    #[test]
    fn parses_cluster_slots_and_rejects_other_shapes() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.3", 7003),
            ]),
        ]);
        let map = SlotMap::from_cluster_slots(&reply, "10.0.0.2").unwrap();
        assert_eq!(map.owner(0), Some("10.0.0.1:7000"));
        assert_eq!(map.owner(8192), Some("10.0.0.2:7001"));
        assert_eq!(map.masters().len(), 2);
        assert!(SlotMap::from_cluster_slots(&Value::Int(3), "h").is_none());
        let bad = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(99_999),
            node("h", 1),
        ])]);
        assert!(SlotMap::from_cluster_slots(&bad, "h").is_none());
        let mut map = SlotMap::default();
        assert_eq!(map.owner(5), None);
        map.set_owner(5, "h:1");
        assert_eq!(map.owner(5), Some("h:1"));
        map.set_owner(20_000, "h:1");
    }
}
