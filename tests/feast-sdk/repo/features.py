"""Feast definitions mirroring Riffle's tests/data/feast-fixtures.toml registry.

Riffle is the online store here (`online_store: type: remote`): Feast's SDK reads through
`POST /get-online-features` and writes through `POST /write-to-online-store`.
"""
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Bool, Float32, Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
batch = FileSource(name="tx_src", path="data.parquet", timestamp_field="event_timestamp")
velocity_push = PushSource(name="user_velocity_push", batch_source=batch)

user_velocity = FeatureView(
    name="user_velocity",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[Field(name="tx_count_1h", dtype=Int64), Field(name="tx_sum_1h", dtype=Float64)],
    source=velocity_push,
    online=True,
)
user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="credit_score_bucket", dtype=Int64),
        Field(name="is_premium", dtype=Bool),
        Field(name="segment", dtype=String),
        Field(name="embedding", dtype=Array(Float32)),
    ],
    source=batch,
    online=True,
)
fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[user_velocity, user_profile[["credit_score_bucket", "is_premium"]]],
)
