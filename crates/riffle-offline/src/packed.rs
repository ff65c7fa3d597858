//! A source's decoded history held compactly, and handed back one entity at a time.
//!
//! A decoded event as the window engine takes it ([`riffle_window::Event`]) costs ~590
//! bytes: its entity id, a vector of `(Arc<str>, FeatureValue)` with a heap string per text
//! field. Ten million of them did not fit the 4 GiB. Here an event is a 40-byte
//! `Slot` (entity interned to an index, event time, arrival and its stream's watermark then,
//! where its values are) and its
//! field values packed as bytes into large blocks ([`pack`]); it becomes an engine event
//! again only when its entity is replayed ([`EntityEvents::event`]), value for value what
//! [`riffle_ingest::pipeline::specs::named_event`] makes of the decoded event (tested).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use riffle_core::{EntityId, FeatureValue, Timestamp};

use crate::cores;
use crate::error::OfflineError;

/// One event of history: whose, when, when it arrived, and where its values are.
#[derive(Debug, Clone, Copy)]
struct Slot {
    time: Timestamp,
    /// Its place in the order read (files by name, then lines or rows): the order a stream
    /// would have delivered it in.
    seq: u64,
    /// The largest event time accepted from its file before it, in epoch ms ([`NONE`]: it
    /// was the first): the watermark of a pipeline reading the file when it arrived.
    watermark_before: i64,
    entity: u32,
    block: u32,
    at: u32,
}

/// [`Slot::watermark_before`] of a file's first event.
const NONE: i64 = i64::MIN;

/// A source's events: collected in arrival order ([`Packed::push`]), then sorted by entity,
/// time and arrival ([`Packed::seal`]) and read per entity ([`Packed::of`]).
pub struct Packed {
    /// The source's field names, in declared order (the packed values' order).
    names: Vec<Arc<str>>,
    ids: Vec<EntityId>,
    index: HashMap<EntityId, u32>,
    slots: Vec<Slot>,
    blocks: Vec<Vec<u8>>,
    /// After [`Packed::seal`]: entity `e`'s events are `slots[starts[e]..starts[e + 1]]`.
    starts: Vec<usize>,
}

impl Packed {
    /// An empty history of events carrying `names`, room made for `capacity` events.
    pub fn new(names: Vec<Arc<str>>, capacity: usize) -> Packed {
        Packed {
            names,
            ids: Vec::new(),
            index: HashMap::new(),
            slots: Vec::with_capacity(capacity),
            blocks: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Keeps a block of packed values; events then name it by the number returned.
    pub fn add_block(&mut self, mut block: Vec<u8>) -> Result<u32, OfflineError> {
        let number = u32::try_from(self.blocks.len())
            .map_err(|_| OfflineError::Held("more than 4 billion blocks of values".into()))?;
        block.shrink_to_fit();
        self.blocks.push(block);
        Ok(number)
    }

    /// Appends the next event to arrive: `entity`'s at `time`, its stream's watermark then
    /// `watermark_before`, its values at `at` in `block`.
    pub fn push(
        &mut self,
        entity: &EntityId,
        time: Timestamp,
        watermark_before: Option<Timestamp>,
        block: u32,
        at: u32,
    ) -> Result<(), OfflineError> {
        let entity = match self.index.get(entity) {
            Some(&e) => e,
            None => {
                let e = u32::try_from(self.ids.len())
                    .map_err(|_| OfflineError::Held("more than 4 billion entities".into()))?;
                self.ids.push(entity.clone());
                self.index.insert(entity.clone(), e);
                e
            }
        };
        let seq = self.slots.len() as u64;
        self.slots.push(Slot {
            time,
            seq,
            watermark_before: watermark_before.map_or(NONE, Timestamp::millis),
            entity,
            block,
            at,
        });
        Ok(())
    }

    /// How many events were kept.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Sorts the events by entity, then event time, then arrival, on up to `threads`
    /// threads. Events of one entity at one time keep the order they arrived in: `seq` makes
    /// the order total, so an unstable sort (no buffer of half the events) gives the same.
    pub fn seal(&mut self, threads: usize) {
        sort(&mut self.slots, threads);
        self.starts = Vec::with_capacity(self.ids.len() + 1);
        let mut at = 0;
        for e in 0..self.ids.len() as u32 {
            self.starts.push(at);
            at += self.slots[at..].partition_point(|s| s.entity == e);
        }
        self.starts.push(at);
    }

    /// The events of `entity`, sorted by time then arrival (none if it has none).
    pub fn of(&self, entity: &EntityId) -> EntityEvents<'_> {
        let slots = match self.index.get(entity) {
            Some(&e) => &self.slots[self.starts[e as usize]..self.starts[e as usize + 1]],
            None => &[],
        };
        EntityEvents {
            packed: self,
            entity: entity.clone(),
            slots: Cow::Borrowed(slots),
        }
    }
}

/// The order [`Packed::seal`] sorts by: total, as `seq` is unique.
fn order(s: &Slot) -> (u32, Timestamp, u64) {
    (s.entity, s.time, s.seq)
}

/// Sorts `slots` by [`order`] on up to `threads` threads: split at the median (everything
/// before it orders before everything after), each half sorted on its own.
fn sort(slots: &mut [Slot], threads: usize) {
    if threads <= 1 || slots.len() < 100_000 {
        slots.sort_unstable_by_key(order);
        return;
    }
    let mid = slots.len() / 2;
    slots.select_nth_unstable_by_key(mid, order);
    let (left, right) = slots.split_at_mut(mid);
    let halves = vec![(left, threads / 2), (right, threads - threads / 2)];
    cores::in_order(halves, |(half, threads)| sort(half, threads));
}

/// One entity's events, sorted by time then arrival.
#[derive(Clone)]
pub struct EntityEvents<'a> {
    packed: &'a Packed,
    entity: EntityId,
    slots: Cow<'a, [Slot]>,
}

impl EntityEvents<'_> {
    pub fn entity(&self) -> &EntityId {
        &self.entity
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Event `i`'s time.
    pub fn time(&self, i: usize) -> Timestamp {
        self.slots[i].time
    }

    /// Event `i`'s place in arrival order.
    pub fn seq(&self, i: usize) -> u64 {
        self.slots[i].seq
    }

    /// How many events have a time at or before `t` (they come first).
    pub fn count_until(&self, t: Timestamp) -> usize {
        self.slots.partition_point(|s| s.time <= t)
    }

    /// Whether a pipeline whose watermark was `until` had surely applied event `i`: it
    /// arrived before the watermark reached `until` (or is the event that reached it), and
    /// is no later (applying a later one would have moved the watermark past `until`).
    pub fn settled_at(&self, i: usize, until: Timestamp) -> bool {
        let slot = &self.slots[i];
        slot.watermark_before < until.millis() && slot.time <= until
    }

    /// Whether such a pipeline may or may not have applied event `i`: it arrived while the
    /// watermark stood at `until`, being no later itself. Which of these a pipeline had
    /// applied depends on where its last flush fell, which history does not say.
    pub fn pending_at(&self, i: usize, until: Timestamp) -> bool {
        let slot = &self.slots[i];
        slot.watermark_before == until.millis() && slot.time <= until
    }

    /// Only the events `keep` keeps (by index), in the same order.
    pub fn only(&self, keep: impl Fn(usize) -> bool) -> Self {
        let slots = (0..self.slots.len())
            .filter(|&i| keep(i))
            .map(|i| self.slots[i])
            .collect();
        Self {
            slots: Cow::Owned(slots),
            ..self.clone()
        }
    }

    /// Event `i` as the window engine takes it: the fields it carried, by name, in declared
    /// order (absent ones left out).
    pub fn event(&self, i: usize) -> Result<riffle_window::Event, OfflineError> {
        let slot = &self.slots[i];
        let fields = self.packed.blocks[slot.block as usize]
            .get(slot.at as usize..)
            .and_then(|bytes| unpack(bytes, &self.packed.names))
            .ok_or_else(|| {
                OfflineError::Held(format!(
                    "an event of {} does not read back as it was packed (a bug)",
                    self.entity
                ))
            })?;
        Ok(riffle_window::Event {
            entity: self.entity.clone(),
            time: slot.time,
            fields,
        })
    }
}

const NULL: u8 = 0;
const INT64: u8 = 1;
const FLOAT64: u8 = 2;
const FALSE: u8 = 3;
const TRUE: u8 = 4;
const STRING: u8 = 5;
const FLOAT_VECTOR: u8 = 6;

/// Where the next values packed into `block` start: an event names its values by this.
pub fn offset(block: &[u8]) -> Result<u32, OfflineError> {
    u32::try_from(block.len())
        .map_err(|_| OfflineError::Held("more than 4 GiB of values in one block".into()))
}

/// Appends one event's field values (one per declared field, `Null` where absent) to `out`:
/// a tag byte each, then its bits (numbers little-endian, text and vectors after their
/// length). Floats keep their exact bits.
pub fn pack(values: &[FeatureValue], out: &mut Vec<u8>) {
    for value in values {
        match value {
            FeatureValue::Null => out.push(NULL),
            FeatureValue::Int64(i) => {
                out.push(INT64);
                out.extend_from_slice(&i.to_le_bytes());
            }
            FeatureValue::Float64(f) => {
                out.push(FLOAT64);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            FeatureValue::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
            FeatureValue::String(s) => {
                out.push(STRING);
                length(s.len(), out);
                out.extend_from_slice(s.as_bytes());
            }
            FeatureValue::FloatVector(v) => {
                out.push(FLOAT_VECTOR);
                length(v.len(), out);
                for f in v {
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
            }
        }
    }
}

/// A length as a little-endian base-128 varint (text is short: usually one byte).
fn length(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The values [`pack`] wrote at the start of `bytes`, paired with `names` and without the
/// `Null`s, as [`riffle_ingest::pipeline::specs::named_event`] pairs a decoded event's;
/// `None` when the bytes end early (not what [`pack`] wrote).
fn unpack(mut bytes: &[u8], names: &[Arc<str>]) -> Option<Vec<(Arc<str>, FeatureValue)>> {
    let mut fields = Vec::with_capacity(names.len());
    for name in names {
        let [tag] = take(&mut bytes)?;
        let value = match tag {
            NULL => continue,
            INT64 => FeatureValue::Int64(i64::from_le_bytes(take(&mut bytes)?)),
            FLOAT64 => FeatureValue::Float64(f64::from_bits(u64::from_le_bytes(take(&mut bytes)?))),
            FALSE => FeatureValue::Bool(false),
            TRUE => FeatureValue::Bool(true),
            STRING => {
                let n = read_length(&mut bytes)?;
                let text = bytes.get(..n)?;
                bytes = &bytes[n..];
                // Packed from a `String`, so it is UTF-8.
                FeatureValue::String(String::from_utf8_lossy(text).into_owned())
            }
            _ => {
                let n = read_length(&mut bytes)?;
                let floats = (0..n)
                    .map(|_| take(&mut bytes).map(|b| f32::from_bits(u32::from_le_bytes(b))))
                    .collect::<Option<_>>()?;
                FeatureValue::FloatVector(floats)
            }
        };
        fields.push((name.clone(), value));
    }
    Some(fields)
}

/// The next `N` bytes, if there are that many.
fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

fn read_length(bytes: &mut &[u8]) -> Option<usize> {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let [b] = take(bytes)?;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(n);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use riffle_ingest::decode;
    use riffle_ingest::pipeline::specs::named_event;

    use super::*;

    #[test]
    fn a_pipeline_at_a_watermark_had_what_arrived_before_it_and_perhaps_what_came_while_it_stood() {
        // Arrival order: 10, 20 (the watermark reaches 20), 15 and 19 (while it stands at
        // 20), 25 (it moves on), 18 (after it passed 20).
        let entity = EntityId::new("u1").unwrap();
        let at = |ms: i64| Timestamp::from_millis(ms).unwrap();
        let mut packed = Packed::new(Vec::new(), 0);
        let b = packed.add_block(Vec::new()).unwrap();
        let mut latest: Option<Timestamp> = None;
        for t in [10, 20, 15, 19, 25, 18] {
            packed.push(&entity, at(t), latest, b, 0).unwrap();
            latest = Some(latest.map_or(at(t), |l| l.max(at(t))));
        }
        packed.seal(1);
        let events = packed.of(&entity);
        let times = |keep: &dyn Fn(usize) -> bool| -> Vec<i64> {
            let kept = events.only(keep);
            (0..kept.len()).map(|i| kept.time(i).millis()).collect()
        };
        let until = at(20);
        assert_eq!(times(&|i| events.settled_at(i, until)), [10, 20]);
        assert_eq!(times(&|i| events.pending_at(i, until)), [15, 19]);
        // Not "every event up to 20": 18 arrived after the watermark passed 20. And a
        // pipeline at 10 had not applied 20, which would have moved it past 10.
        assert_eq!(times(&|i| events.settled_at(i, at(10))), [10]);
        assert_eq!(
            times(&|i| events.time(i).millis() == 18
                && !events.settled_at(i, until)
                && !events.pending_at(i, until)),
            [18]
        );
    }

    #[test]
    fn an_event_comes_back_as_named_event_makes_it() {
        let names: Vec<Arc<str>> = ["a", "b", "c", "d", "e", "f", "g"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let long = "x".repeat(300);
        let values = vec![
            FeatureValue::Float64(-0.1 + 0.2),
            FeatureValue::Null,
            FeatureValue::String(long),
            FeatureValue::Int64(i64::MIN),
            FeatureValue::Bool(true),
            FeatureValue::FloatVector(vec![1.5, f32::MIN_POSITIVE, -0.0]),
            FeatureValue::String("é".into()),
        ];
        let entity = EntityId::new("u1").unwrap();
        let time = Timestamp::from_millis(1_700_000_000_123).unwrap();
        let mut packed = Packed::new(names.clone(), 0);
        let mut block = vec![9u8; 3]; // values need not start a block
        pack(&values, &mut block);
        let b = packed.add_block(block).unwrap();
        packed.push(&entity, time, None, b, 3).unwrap();
        packed.seal(1);
        let expected = named_event(
            &names,
            decode::Event {
                entity: entity.clone(),
                time,
                fields: values,
            },
        );
        let got = packed.of(&entity).event(0).unwrap();
        assert_eq!(got, expected);
        // Bit for bit, including the float sum's rounding and the negative zero.
        let bits = |e: &riffle_window::Event| format!("{:?}", e.fields);
        assert_eq!(bits(&got), bits(&expected));
    }

    #[test]
    fn events_are_sorted_by_entity_time_then_arrival() {
        let mut packed = Packed::new(vec![], 0);
        let b = packed.add_block(Vec::new()).unwrap();
        let (u1, u2) = (EntityId::new("u1").unwrap(), EntityId::new("u2").unwrap());
        let t = |ms| Timestamp::from_millis(ms).unwrap();
        packed.push(&u2, t(5), None, b, 0).unwrap();
        packed.push(&u1, t(7), None, b, 0).unwrap();
        packed.push(&u1, t(3), None, b, 0).unwrap();
        packed.push(&u1, t(7), None, b, 0).unwrap();
        packed.seal(1);
        let one = packed.of(&u1);
        let seen: Vec<_> = (0..one.len()).map(|i| (one.time(i), one.seq(i))).collect();
        assert_eq!(seen, vec![(t(3), 2), (t(7), 1), (t(7), 3)]);
        assert_eq!(packed.of(&u2).len(), 1);
        assert!(packed.of(&EntityId::new("u3").unwrap()).is_empty());
        assert_eq!(one.count_until(t(6)), 1);
    }

    #[test]
    fn a_sort_on_threads_orders_as_one_thread_does() {
        let mut packed = Packed::new(vec![], 0);
        let b = packed.add_block(Vec::new()).unwrap();
        let ids: Vec<_> = (0..97)
            .map(|i| EntityId::new(format!("u{i}")).unwrap())
            .collect();
        for i in 0..250_000u64 {
            let time = Timestamp::from_millis((i * 7919 % 1000) as i64).unwrap();
            packed
                .push(&ids[(i * 31 % 97) as usize], time, None, b, 0)
                .unwrap();
        }
        let mut one = packed.slots.clone();
        sort(&mut one, 1);
        packed.seal(3);
        let key = |s: &[Slot]| s.iter().map(order).collect::<Vec<_>>();
        assert_eq!(key(&packed.slots), key(&one));
        assert!(one.windows(2).all(|w| order(&w[0]) < order(&w[1])));
    }
}
