//! Property tests of durable state: snapshots round-trip byte for byte, restoring a
//! checkpoint taken mid-stream and replaying the rest gives identical state and outputs
//! (exactly-once in effect), and decoding garbage never panics.

use proptest::prelude::*;
use riffle_core::EntityId;

use super::against_oracle::{config, entity, run, steps, ts, T0};
use crate::snapshot::{decode, SnapshotError};
use crate::spec::resolve;
use crate::{Watermarks, WindowEngine};

/// Every entity's snapshot, sorted by entity.
fn checkpoint(engine: &WindowEngine) -> (Watermarks, Vec<(EntityId, Vec<u8>)>) {
    let mut entities: Vec<EntityId> = engine.entities().cloned().collect();
    entities.sort();
    let snaps = entities
        .into_iter()
        .filter_map(|id| engine.snapshot_entity(&id).map(|s| (id, s)))
        .collect();
    (engine.watermarks(), snaps)
}

fn restore(watermarks: Watermarks, snaps: &[(EntityId, Vec<u8>)]) -> WindowEngine {
    let wm = Watermarks::from_bytes(&watermarks.to_bytes()).unwrap();
    assert_eq!(wm, watermarks);
    let mut engine = WindowEngine::resume(config(), wm).unwrap();
    for (id, bytes) in snaps {
        engine.restore_entity(id.clone(), bytes).unwrap();
    }
    engine
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn snapshots_round_trip(steps in steps()) {
        let mut engine = WindowEngine::new(config()).unwrap();
        engine.advance(ts(T0));
        let end = run(&mut engine, T0, &steps, &mut Vec::new());
        let (wm, snaps) = checkpoint(&engine);
        let layout = resolve(&config().specs).unwrap();
        for (_, bytes) in &snaps {
            let state = decode(bytes, &layout).unwrap();
            prop_assert_eq!(&crate::snapshot::encode(&state, &layout), bytes);
        }
        let restored = restore(wm, &snaps);
        prop_assert_eq!(checkpoint(&restored), (wm, snaps));
        for i in 0..6 {
            for later in [0, 30_000, 200_000] {
                let at = ts(end + later);
                prop_assert_eq!(restored.values(&entity(i), at), engine.values(&entity(i), at));
            }
        }
    }

    /// Exactly-once in effect: kill the engine after any step, restore the checkpoint and
    /// replay the rest; every output, value and snapshot equals the uninterrupted run's.
    #[test]
    fn replay_after_restore_is_identical(steps in steps(), split in 0.0f64..1.0) {
        let cut = ((steps.len() as f64) * split) as usize;
        let (head, tail) = steps.split_at(cut);
        let mut a = WindowEngine::new(config()).unwrap();
        a.advance(ts(T0));
        let at_cut = run(&mut a, T0, head, &mut Vec::new());
        a.take_dirty();
        // "kill -9" here: only the checkpoint survives.
        let (wm, snaps) = checkpoint(&a);
        let mut b = restore(wm, &snaps);
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        let end = run(&mut a, at_cut, tail, &mut out_a);
        run(&mut b, at_cut, tail, &mut out_b);
        prop_assert_eq!(out_a, out_b);
        prop_assert_eq!(a.take_dirty(), b.take_dirty());
        prop_assert_eq!(checkpoint(&a), checkpoint(&b));
        for i in 0..6 {
            for later in [0, 30_000, 200_000] {
                let at = ts(end + later);
                prop_assert_eq!(a.values(&entity(i), at), b.values(&entity(i), at));
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let layout = resolve(&config().specs).unwrap();
        let _ = decode(&bytes, &layout);
        let _ = Watermarks::from_bytes(&bytes);
    }

    #[test]
    fn damaged_snapshots_never_panic(steps in steps(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut engine = WindowEngine::new(config()).unwrap();
        engine.advance(ts(T0));
        run(&mut engine, T0, &steps, &mut Vec::new());
        let layout = resolve(&config().specs).unwrap();
        for (_, bytes) in checkpoint(&engine).1 {
            let mut damaged = bytes.clone();
            for (pos, xor) in &flips {
                let i = pos % damaged.len();
                damaged[i] ^= xor;
            }
            let _ = decode(&damaged, &layout);
            let truncated = &bytes[..cut % bytes.len()];
            prop_assert!(decode(truncated, &layout).is_err());
        }
    }
}

#[test]
fn version_and_emptiness_are_checked() {
    let layout = resolve(&config().specs).unwrap();
    assert_eq!(decode(&[], &layout), Err(SnapshotError::Empty));
    assert_eq!(
        decode(&[9], &layout),
        Err(SnapshotError::UnsupportedVersion(9))
    );
    assert_eq!(decode(&[1, 0], &layout), Err(SnapshotError::Truncated));
    assert!(decode(&[1, 0, 0], &layout).is_ok());
    assert!(decode(&[1, 0, 0, 7], &layout).is_err());
}
