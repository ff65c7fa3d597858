"""Feast 0.67's own Redis layout for the lesson's ten features, for bench/memory.sh.

Run with a python that has feast[redis]==0.67.0 (scripts/test.sh installs one):

    feast_memory.py write   PORT VALUES REPO_DIR   apply a Feast repo (Redis online store) in
                                                   REPO_DIR and write every user in VALUES
                                                   through Feast's own write path
    feast_memory.py measure PORT LABEL BEFORE VALUES
                                                   print bench/memory.sh's row for the keys
                                                   now in the server (BEFORE: used_memory
                                                   before the write), then Feast's layout

VALUES is bench/memory.sh's values file (one line per user; columns 1-11 are the user id and
the lesson's ten features), so Feast stores the same values as the Riffle scenarios.

The two steps are separate processes so the write's connection is closed before `measure`
reads INFO used_memory: a client's buffers count in used_memory, and the shell scenarios are
measured with only redis-cli connected. `measure` works in Python, not redis-cli, because
Feast's keys are binary (a serialized EntityKey proto followed by the project name).
"""

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

# Same project and view names as the Riffle scenarios: Feast puts the project name in every
# key and the view name in every hash's timestamp field, so their lengths count.
PROJECT = "fraud"
VIEW = "user_features"
FEATURES = [
    ("tx_count_1h", int),
    ("tx_sum_1h", float),
    ("tx_count_24h", int),
    ("tx_sum_24h", float),
    ("account_age_days", int),
    ("avg_tx_90d", float),
    ("distinct_merchants_7d", int),
    ("credit_score_bucket", int),
    ("is_premium", lambda s: s == "true"),
    ("last_login_ts", int),
]
# The Riffle group's ttl and the lesson's PEXPIRE: two days, so every scenario's keys carry
# an expiry (Feast sets none unless key_ttl_seconds is given).
KEY_TTL_SECONDS = 2 * 24 * 3600


def write(port: str, values_path: str, repo_dir: str) -> None:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float64, Int64

    repo = Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"""project: {PROJECT}
provider: local
registry: {repo / "registry.db"}
online_store:
  type: redis
  connection_string: "127.0.0.1:{port}"
  key_ttl_seconds: {KEY_TTL_SECONDS}
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )
    dtypes = {int: Int64, float: Float64}
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name=VIEW,
        entities=[user],
        ttl=timedelta(days=2),
        schema=[Field(name=n, dtype=dtypes.get(t, Bool)) for n, t in FEATURES],
        # Never read: the rows are written straight to the online store.
        source=FileSource(
            name="user_src", path=str(repo / "data.parquet"), timestamp_field="event_timestamp"
        ),
        online=True,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])

    rows = [line.split() for line in Path(values_path).read_text().splitlines()]
    # Riffle's load stamps rows with the load's start in milliseconds; so does this.
    now = datetime.now(timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    df = pd.DataFrame({"user_id": [r[0] for r in rows]})
    for i, (name, parse) in enumerate(FEATURES, start=1):
        df[name] = [parse(r[i]) for r in rows]
    df["event_timestamp"] = now
    store.write_to_online_store(VIEW, df)


def measure(port: str, label: str, before: str, values_path: str) -> None:
    import redis

    r = redis.Redis(host="127.0.0.1", port=int(port))
    after = r.info("memory")["used_memory"]
    keys = list(r.scan_iter(count=1000))
    mem = sum(r.memory_usage(k, samples=0) for k in keys)
    fields, row = 0, 0
    for k in keys:
        h = r.hgetall(k)
        fields += len(h)
        row += sum(len(v) for v in h.values())
    n = len(keys)
    users = len(Path(values_path).read_text().splitlines())
    print(
        f"{label:<34} {n:6d} {fields // n:7d} {row / n:10.1f} {mem / n:14.1f} "
        f"{(after - int(before)) / n:13.1f}"
    )
    # The layout, read back from the server: keys per entity, and one key's fields.
    sample = keys[0]
    h = r.hgetall(sample)
    ts = [f for f in h if f.startswith(b"_ts:")]
    hashed = [f for f in h if not f.startswith(b"_ts:")]
    ttl = r.ttl(sample)
    name_sizes = "/".join(str(n) for n in sorted({len(f) for f in hashed}))
    print(
        f"    Feast's layout: {n / users:g} hash per entity, key = EntityKey proto + project "
        f"({min(map(len, keys))}-{max(map(len, keys))} B, binary), TTL {ttl} s; {len(h)} fields "
        f"per key: "
        f"{', '.join(f.decode() for f in ts)} ({', '.join(str(len(h[f])) for f in ts)} B Timestamp "
        f"proto) and {len(hashed)} x mmh3('{VIEW}:<feature>') ({name_sizes} B "
        f"names) holding ValueProto bytes ({min(len(h[f]) for f in hashed)}-"
        f"{max(len(h[f]) for f in hashed)} B)"
    )

if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 6 and sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
