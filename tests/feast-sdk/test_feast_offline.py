"""Feast's own Python SDK against `riffle serve-offline`, unchanged: a Feast repo whose
offline store is `type: remote` runs `feast apply` and `get_historical_features`, and gets
exactly what `riffle training-set` writes for the same entity frame: window features
replayed from a source's event history, and a batch group's as-of values (checked here
against an as-of join written out plainly), with Riffle's training defaults where nothing
was known yet. Then the same read over TLS: `riffle serve-offline --tls-cert/--tls-key` with
a test CA minted by the `openssl` command, and Feast's `scheme: https` with `cert:` the CA.

Usage: test_feast_offline.py RIFFLE_BIN WORK_DIR  (run by run.sh).
Prints one line per check and `N passed, N failed` at the end; exits non-zero on failure.
"""
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.errors import FeastError

riffle, work = sys.argv[1], Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- History: three hours of transactions and a profile table, relative to now ---------
rng = random.Random(7)
now = datetime.now(timezone.utc).replace(microsecond=0)
start = now - timedelta(hours=3)
users = [f"u{i}" for i in range(12)]
events = []
for n in range(1500):
    at = start + timedelta(seconds=rng.uniform(0, 3 * 3600 - 120))
    events.append(
        {
            "user_id": rng.choice(users[:10]),  # u10 and u11 never transact
            "event_time": at.isoformat().replace("+00:00", "Z"),
            "amount": round(rng.uniform(1, 500), 2),
            "merchant_id": f"m{rng.randrange(30)}",
        }
    )
events.sort(key=lambda e: e["event_time"])
(work / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))

profile = []
for i, user in enumerate(users[:9]):  # u9.. have no profile row
    for k, age_min in enumerate([170, 95, 40][: 1 + i % 3]):
        profile.append(
            {
                "user_id": user,
                "event_timestamp": now - timedelta(minutes=age_min),
                "score": i * 10 + k,
                "premium": (i + k) % 2 == 0,
                "tier": f"t{(i + k) % 4}",
            }
        )
pq.write_table(pa.Table.from_pylist(profile), work / "profile.parquet")

(work / "riffle.toml").write_text(
    f"""
[project]
name = "offline_it"

[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "transactions"
entity = "user"
kind = "file"
path = "{work / 'live.ndjson'}"
offline = "{work / 'events.ndjson'}"
time_field = "event_time"
fields = [{{ name = "amount", type = "float64" }}, {{ name = "merchant_id", type = "string" }}]

[[feature_groups]]
name = "tx"
entity = "user"
source = "transactions"
ttl = "48h"
freshness_slo = "1m"
features = [
  {{ name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" }},
  {{ name = "sum_1h", type = "float64", default = 0.0, aggregation = "sum", field = "amount", window = "1h" }},
  {{ name = "last_merchant_1h", type = "string", default = "none", aggregation = "last", field = "merchant_id", window = "1h" }},
]

[[feature_groups]]
name = "profile"
entity = "user"
ttl = "2h"
freshness_slo = "10m"
staleness_limit = "1h"
offline = "{work / 'profile.parquet'}"
features = [
  {{ name = "score", type = "int64", default = -1 }},
  {{ name = "premium", type = "bool", default = false }},
  {{ name = "tier", type = "string", default = "none" }},
]
"""
)

# --- The Feast repo: feature views named as Riffle's groups, offline store remote ------
port = free_port()
repo = work / "repo"
repo.mkdir(exist_ok=True)
(repo / "features.py").write_text(
    """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
transactions = FileSource(name="transactions", path="unused.parquet", timestamp_field="event_time")
profile_src = FileSource(name="profile", path="unused.parquet", timestamp_field="event_timestamp")
tx = FeatureView(
    name="tx", entities=[user], ttl=timedelta(hours=48), source=transactions,
    schema=[Field(name="n_1h", dtype=Int64), Field(name="sum_1h", dtype=Float64),
            Field(name="last_merchant_1h", dtype=String)],
)
profile = FeatureView(
    name="profile", entities=[user], ttl=timedelta(hours=2), source=profile_src,
    schema=[Field(name="score", dtype=Int64), Field(name="premium", dtype=Bool),
            Field(name="tier", dtype=String)],
)
"""
)
def feature_store_yaml(port, tls_lines=""):
    (repo / "feature_store.yaml").write_text(
        f"""project: offline_it
provider: local
registry: {repo / 'registry.db'}
online_store:
  type: sqlite
  path: {repo / 'online.db'}
offline_store:
  type: remote
  host: 127.0.0.1
  port: {port}
{tls_lines}entity_key_serialization_version: 3
"""
    )


def start_serve_offline(port, log, extra=()):
    """`riffle serve-offline` on `port`, once it has said where it listens (its socket is
    bound by then: a connection waits in the backlog until it is accepted)."""
    started = subprocess.Popen(
        [riffle, "serve-offline", "--config", str(work / "riffle.toml"), "--listen",
         f"127.0.0.1:{port}", *extra],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        if "riffle serve-offline: project" in log.read_text() or started.poll() is not None:
            break
        time.sleep(0.1)
    return started


feature_store_yaml(port)
server = start_serve_offline(port, work / "serve-offline.log")
try:

    feast_bin = Path(sys.executable).parent / "feast"
    applied = subprocess.run([str(feast_bin), "apply"], cwd=repo, capture_output=True, text=True)
    check("feast apply against riffle serve-offline", applied.returncode == 0, applied.stderr[-2000:])
    log = (work / "serve-offline.log").read_text()
    check(
        "feast apply validated its data sources with riffle serve-offline",
        "data source known" in log,
        log[-2000:],
    )

    # --- The entity frame: spine rows over the last three hours, labels passed through ---
    spine_users = users + ["u0", "u3"]
    spine = pd.DataFrame(
        {
            "user_id": [u for u in spine_users for _ in range(4)],
            "event_timestamp": [
                now - timedelta(minutes=m) for _ in spine_users for m in (175, 90, 33, 1)
            ],
            "label": list(range(4 * len(spine_users))),
        }
    )
    features = [
        "tx:n_1h",
        "tx:sum_1h",
        "tx:last_merchant_1h",
        "profile:score",
        "profile:premium",
        "profile:tier",
    ]
    store = FeatureStore(repo_path=str(repo))
    got = store.get_historical_features(entity_df=spine, features=features).to_df()
    check("get_historical_features answers every row", len(got) == len(spine), f"{len(got)} rows")
    check(
        "the entity frame's columns come back in order, then the features",
        list(got.columns) == ["user_id", "event_timestamp", "label", "n_1h", "sum_1h",
                              "last_merchant_1h", "score", "premium", "tier"],
        list(got.columns),
    )
    check("labels are passed through in order", list(got["label"]) == list(spine["label"]))

    # --- The same spine through `riffle training-set` --------------------------------
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), work / "spine.parquet")
    built = subprocess.run(
        [riffle, "training-set", "--config", str(work / "riffle.toml"), "--spine",
         str(work / "spine.parquet"), "--out", str(work / "ts.parquet"), "--features",
         ",".join(features)],
        capture_output=True, text=True,
    )
    check("riffle training-set on the same spine", built.returncode == 0, built.stderr[-2000:])
    want = pq.read_table(work / "ts.parquet").to_pandas()
    for column in ["n_1h", "sum_1h", "last_merchant_1h", "score", "premium", "tier"]:
        diffs = [
            (i, a, b) for i, (a, b) in enumerate(zip(got[column], want[column])) if a != b
        ]
        check(f"{column}: Feast's answer equals riffle training-set's, row for row", not diffs, diffs[:5])
    check(
        "window features are not all defaults (history was replayed)",
        (got["n_1h"] > 0).sum() > len(got) / 2 and got["sum_1h"].max() > 0,
        got["n_1h"].tolist(),
    )
    check(
        "users who never transacted get the training default",
        set(got[got.user_id.isin(["u10", "u11"])]["last_merchant_1h"]) == {"none"},
    )

    # --- The batch group, against an as-of join written out here ---------------------
    def as_of(user, t):
        rows = [r for r in profile if r["user_id"] == user and r["event_timestamp"] <= t]
        if not rows:
            return (-1, False, "none")
        row = max(rows, key=lambda r: r["event_timestamp"])
        age = t - row["event_timestamp"]
        if age > timedelta(hours=1):  # past the staleness limit (and the TTL): the default
            return (-1, False, "none")
        return (row["score"], row["premium"], row["tier"])

    expected = [as_of(u, t.to_pydatetime()) for u, t in zip(spine["user_id"], spine["event_timestamp"])]
    actual = list(zip(got["score"], got["premium"], got["tier"]))
    wrong = [(i, e, a) for i, (e, a) in enumerate(zip(expected, actual)) if tuple(e) != tuple(a)]
    check("profile values are the newest row at or before each instant", not wrong, wrong[:5])
    check(
        "some profile values are real, some are defaults",
        0 < sum(1 for e in expected if e[0] >= 0) < len(expected),
    )

    # --- Full feature names, as Feast names them ---------------------------------------
    full = store.get_historical_features(
        entity_df=spine, features=features[:2], full_feature_names=True
    ).to_df()
    check(
        "full feature names are view__feature",
        ["tx__n_1h", "tx__sum_1h"] == list(full.columns[-2:]),
        list(full.columns),
    )

    # --- Refusals reach the client with their reason -----------------------------------
    late = spine.head(1).copy()
    late["event_timestamp"] = [now + timedelta(hours=1)]
    try:
        store.get_historical_features(entity_df=late, features=features[:1]).to_df()
        check("an instant in the future is refused", False, "no error")
    except FeastError as e:
        check("an instant in the future is refused, naming why", "future" in str(e), str(e)[:300])
    no_key = spine[["event_timestamp", "label"]]
    try:
        store.get_historical_features(entity_df=no_key, features=features[:1]).to_df()
        check("an entity frame without the join key is refused", False, "no error")
    except FeastError as e:
        check("an entity frame without the join key is refused, naming it", "user_id" in str(e), str(e)[:300])
    try:
        store.get_historical_features(entity_df=spine, features=["tx:n_2h"]).to_df()
        check("an unknown feature is refused", False, "no error")
    except Exception as e:  # noqa: BLE001 - Feast itself may refuse it before Riffle does
        check("an unknown feature is refused, naming it", "n_2h" in str(e), str(e)[:300])
finally:
    server.terminate()
    server.wait(timeout=10)

# --- Over TLS: the same read through Feast's `scheme: https`, trusting the test CA ---------
tls = work / "tls"
tls.mkdir()


def openssl(*args):
    made = subprocess.run(["openssl", *args], cwd=tls, capture_output=True, text=True)
    if made.returncode != 0:
        sys.exit(f"openssl {' '.join(args)}: {made.stderr}")


p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
openssl("req", "-x509", *p256, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=riffle test CA")
openssl("req", *p256, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
(tls / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-out", "tls.crt", "-extfile", "san.ext")
tls_port = free_port()
feature_store_yaml(tls_port, f"  scheme: https\n  cert: {tls / 'ca.pem'}\n")
server = start_serve_offline(
    tls_port, work / "serve-offline-tls.log",
    ["--tls-cert", str(tls / "tls.crt"), "--tls-key", str(tls / "tls.key")],
)
try:
    log = (work / "serve-offline-tls.log").read_text()
    check("serve-offline says it speaks TLS", f"grpc+tls://127.0.0.1:{tls_port}" in log, log[-2000:])
    over_tls = FeatureStore(repo_path=str(repo)).get_historical_features(
        entity_df=spine, features=features
    ).to_df()
    check("over TLS, Feast gets the same answer as in plain gRPC", over_tls.equals(got),
          over_tls.compare(got) if over_tls.shape == got.shape else over_tls.shape)
finally:
    server.terminate()
    server.wait(timeout=10)

print(f"{passed} passed, {failed} failed")
if failed:
    for name in ["serve-offline.log", "serve-offline-tls.log"]:
        print(f"--- riffle {name}")
        print((work / name).read_text()[-3000:] if (work / name).exists() else "(none)")
sys.exit(1 if failed else 0)
