"""Feast's own Python SDK against a running Riffle, unchanged: a Feast repo whose
online store is `type: remote` pointing at Riffle writes and reads through it.

Usage: test_feast_sdk.py REPO_DIR RIFFLE_URL  (run by run.sh, which starts Riffle).
Prints one line per check and `N passed, N failed` at the end; exits non-zero on failure.
"""
import sys
from datetime import datetime, timezone

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode

repo, url = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


store = FeatureStore(repo_path=repo)
now = datetime.now(timezone.utc).replace(microsecond=0)

# Write through Feast: write_to_online_store and push both go to /write-to-online-store.
store.write_to_online_store(
    feature_view_name="user_profile",
    df=pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "event_timestamp": [now, now],
            "credit_score_bucket": [4, 7],
            "is_premium": [True, False],
            "segment": ["gold", "basic"],
            "embedding": [[0.25, -1.5], [0.0, 1.0]],
        }
    ),
)
store.push(
    "user_velocity_push",
    pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "event_timestamp": [now, now],
            "tx_count_1h": [3, 0],
            "tx_sum_1h": [42.5, 0.0],
        }
    ),
    to=PushMode.ONLINE,
)
check("writes accepted", True)

# Read through Feast.
out = store.get_online_features(
    features=[
        "user_velocity:tx_count_1h",
        "user_velocity:tx_sum_1h",
        "user_profile:credit_score_bucket",
        "user_profile:is_premium",
        "user_profile:segment",
        "user_profile:embedding",
    ],
    entity_rows=[{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "u_missing"}],
).to_dict()
print(out)
check("join key echoed", out["user_id"] == ["u1", "u2", "u_missing"], out.get("user_id"))
check("int64 values", out["tx_count_1h"][:2] == [3, 0], out.get("tx_count_1h"))
check("float64 values", out["tx_sum_1h"][:2] == [42.5, 0.0], out.get("tx_sum_1h"))
check("int64 profile", out["credit_score_bucket"][:2] == [4, 7], out.get("credit_score_bucket"))
check("bool values", out["is_premium"][:2] == [True, False], out.get("is_premium"))
check("string values", out["segment"][:2] == ["gold", "basic"], out.get("segment"))
check(
    "float32 array values",
    [list(v) for v in out["embedding"][:2]] == [[0.25, -1.5], [0.0, 1.0]],
    out.get("embedding"),
)
# Riffle's documented choice: a missing entity gets its training defaults (the registry's
# `default`s), flagged NOT_FOUND, never a null the model was not trained on.
check(
    "missing entity reads the training defaults",
    {f: out[f][2] for f in out if f != "user_id"}
    == {
        "tx_count_1h": 0,
        "tx_sum_1h": 0.0,
        "credit_score_bucket": 2,
        "is_premium": False,
        "segment": "unknown",
        "embedding": [0.0, 0.0],
    },
    {f: out[f][2] for f in out},
)

# A feature service.
svc = store.get_online_features(
    features=store.get_feature_service("fraud_v1"),
    entity_rows=[{"user_id": "u2"}],
).to_dict()
print(svc)
check(
    "feature service",
    svc.get("tx_count_1h") == [0] and svc.get("credit_score_bucket") == [7] and svc.get("is_premium") == [False],
    svc,
)

# Statuses are visible through the SDK's response proto.
resp = store.get_online_features(
    features=["user_velocity:tx_count_1h"],
    entity_rows=[{"user_id": "u1"}, {"user_id": "u_missing"}],
)
statuses = [int(s) for s in resp.proto.results[1].statuses]
# FieldStatus: 1 = PRESENT, 3 = NOT_FOUND.
check("statuses PRESENT then NOT_FOUND", statuses == [1, 3], statuses)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
