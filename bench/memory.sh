#!/usr/bin/env bash
# Redis memory per entity for the lesson's ten features, by row encoding and layout, measured
# in one run on one private redis-server. Not a test: it asserts nothing, it reports.
#
#   bench/memory.sh [--users N]
#
# Needs: redis-server, redis-cli (Debian: redis-server, redis-tools), python3 (a free port).
# Every scenario starts from an empty server (FLUSHALL) and loads the same N users' values:
#   plain hash      the lesson's layout: key user:<id>:features, ten string fields (redis-cli)
#   one group v1/v2 the ten features as ONE Riffle group (bench/lesson-ten-features.toml),
#                   `riffle load` with [store] encoding = 1, then 2: key fraud:{user:<id>},
#                   one field user_features@1
#   v2 + seconds    v2 with an event_timestamp column in whole seconds (the load's start,
#                   truncated) instead of load's default, the load's start in ms. An older
#                   event time costs more in the computed-at delta than seconds save
#   v2 + raw mean   v2 with avg_tx_90d at full precision (a computed mean, not a 2-decimal
#                   amount): the float that cannot take a short form
#   fraud 4 groups  examples/fraud's split over user_velocity, user_historical, user_profile
#                   and user_session (17 features: the groups hold more than the ten; the
#                   extra ones get values of the same kind), v1 then v2
# Figures per entity key: MEMORY USAGE (SAMPLES 0: exact) averaged over every key found by
# SCAN, row bytes (HSTRLEN, summed over the key's fields), and the growth of INFO
# used_memory divided by the keys (adds the keyspace's dict and expires entries).
#   Feast 0.67      Feast's own Redis online store writes the ten features as one
#                   FeatureView (bench/feast_memory.py: apply, then write_to_online_store),
#                   with key_ttl_seconds = 2 days like the others. Needs Feast's SDK in the
#                   venv scripts/test.sh installs ($RIFFLE_FEAST_VENV, default
#                   ~/.cache/riffle/feast-0.67); without it the row quotes issue 4's 280 B.
#                   Its keys are binary, so bench/feast_memory.py measures them the same way
#                   in Python (redis-cli reads commands by line and a key can hold a newline).
set -euo pipefail
cd "$(dirname "$0")/.."

users=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in redis-server redis-cli python3; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (apt-get install redis-server redis-tools python3)" >&2; exit 1; }
done

echo "==> building the release binary"
cargo build -q --release -p riffle
bin=target/release/riffle

work=$(mktemp -d)
redis_pid=
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null; wait 2> /dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
cli() { redis-cli -p "$port" "$@"; }
# Redis 7 allocates a latency histogram (~49 KB, counted in used_memory) the first time each
# command runs: it landed in the growth of whichever scenario first used HSET, HMGET, EXPIRE...
# (Redis 6 has no such option, nor the histograms.)
cli config set latency-tracking no > /dev/null 2>&1 || true
store="redis://127.0.0.1:$port"
echo "    redis-server $(redis-server --version | awk '{print $3}' | tr -d 'v='), $users users per scenario"

# One line of values per user, shared by every scenario (seeded: the same every run).
awk -v n="$users" 'BEGIN { srand(42); for (i = 0; i < n; i++) {
  avg = rand() * 80
  printf "u%d %d %.2f %d %.2f %d %.2f %d %d %s %d %.17g %.17g %.2f %d %d %.2f %d %d\n", i,
    int(rand() * 20), rand() * 500, int(rand() * 100), rand() * 3000, int(rand() * 3650),
    avg, int(rand() * 30), int(rand() * 10), (rand() < 0.2 ? "true" : "false"),
    1795700000000 + int(rand() * 1000000), avg, rand() * 100, rand() * 400, int(rand() * 40),
    int(rand() * 5), rand() * 200, 1 + int(rand() * 3), 1 + int(rand() * 2) } }' > "$work/values"
# Columns: 1 id, 2 tx_count_1h, 3 tx_sum_1h, 4 tx_count_24h, 5 tx_sum_24h, 6 account_age_days,
# 7 avg_tx_90d, 8 distinct_merchants_7d, 9 credit_score_bucket, 10 is_premium,
# 11 last_login_ts, 12 avg_tx_90d at full precision, 13 tx_amount_mean_1h, 14 tx_amount_max_1h,
# 15 distinct_merchants_24h, 16 session_tx_count_30m, 17 session_amount_sum_30m,
# 18 session_countries_30m, 19 session_devices_30m.
csv() { # file header awk-print-expression
  { echo "$2"; awk -v now="$(date -u +%Y-%m-%dT%H:%M:%SZ)" "{ print $3 }" OFS=, "$work/values"; } > "$work/$1"
}
ten=user_id,tx_count_1h,tx_sum_1h,tx_count_24h,tx_sum_24h,account_age_days,avg_tx_90d,distinct_merchants_7d,credit_score_bucket,is_premium,last_login_ts
csv ten.csv "$ten" '$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11'
csv ten-raw-mean.csv "$ten" '$1,$2,$3,$4,$5,$6,$12,$8,$9,$10,$11'
csv velocity.csv user_id,tx_count_1h,tx_sum_1h,tx_amount_mean_1h,tx_amount_max_1h,distinct_merchants_24h '$1,$2,$3,$13,$14,$15'
csv historical.csv user_id,tx_count_24h,tx_sum_24h,avg_tx_90d,distinct_merchants_7d '$1,$4,$5,$7,$8'
csv profile.csv user_id,account_age_days,credit_score_bucket,is_premium '$1,$6,$9,$10'
csv session.csv user_id,last_login_ts,session_tx_count_30m,session_amount_sum_30m,session_countries_30m,session_devices_30m '$1,$11,$16,$17,$18,$19'

with_encoding() { # registry encoding out
  if grep -q '^encoding = ' "$1"; then
    sed "s/^encoding = .*/encoding = $2/" "$1" > "$3"
  else
    sed "/^\[store\]$/a encoding = $2" "$1" > "$3"
  fi
}
with_encoding bench/lesson-ten-features.toml 1 "$work/one-v1.toml"
with_encoding bench/lesson-ten-features.toml 2 "$work/one-v2.toml"
with_encoding examples/fraud/riffle.toml 1 "$work/fraud-v1.toml"
with_encoding examples/fraud/riffle.toml 2 "$work/fraud-v2.toml"

used_memory() { cli info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
load() { # config group csv
  "$bin" load --config "$1" --store "$store" --group "$2" "$work/$3" > "$work/load.log" 2>&1 \
    || { cat "$work/load.log"; exit 1; }
}
printf '%-34s %6s %7s %10s %14s %13s\n' scenario keys fields "row B/key" "MEMORY B/key" "used B/key"
measure() { # label key-pattern before fields...
  local label=$1 pattern=$2 before=$3; shift 3
  local after keys mem rows=0 f
  after=$(used_memory)
  cli --scan --pattern "$pattern" > "$work/keys"
  keys=$(wc -l < "$work/keys")
  mem=$(awk '{ print "MEMORY USAGE", $0, "SAMPLES", 0 }' "$work/keys" | cli | awk '{ s += $1 } END { print s }')
  for f in "$@"; do
    rows=$((rows + $(awk -v f="$f" '{ print "HSTRLEN", $0, f }' "$work/keys" | cli | awk '{ s += $1 } END { print s }')))
  done
  awk -v l="$label" -v k="$keys" -v n="$#" -v r="$rows" -v m="$mem" -v u="$((after - before))" \
    'BEGIN { printf "%-34s %6d %7d %10.1f %14.1f %13.1f\n", l, k, n, r / k, m / k, u / k }'
}

cli flushall > /dev/null; before=$(used_memory)
awk '{ printf "HSET user:%s:features tx_count_1h %s tx_sum_1h %s tx_count_24h %s tx_sum_24h %s account_age_days %s avg_tx_90d %s distinct_merchants_7d %s credit_score_bucket %s is_premium %s last_login_ts %s\nPEXPIRE user:%s:features 172800000\n",
  $1, $2, $3, $4, $5, $6, $7, $8, $9, ($10 == "true" ? "True" : "False"), $11, $1 }' "$work/values" | cli > /dev/null
measure "plain hash (lesson, 10 strings)" 'user:*:features' "$before" tx_count_1h tx_sum_1h tx_count_24h tx_sum_24h \
  account_age_days avg_tx_90d distinct_merchants_7d credit_score_bucket is_premium last_login_ts

for scenario in "v1:one-v1.toml:ten.csv" "v2:one-v2.toml:ten.csv" "v2 + seconds:one-v2.toml:ten-seconds.csv" \
  "v2 + raw mean:one-v2.toml:ten-raw-mean.csv"; do
  IFS=: read -r label config file <<< "$scenario"
  cli flushall > /dev/null; before=$(used_memory)
  # Written just before its load, so its event time is the load's start (whole seconds).
  [ "$file" = ten-seconds.csv ] && csv ten-seconds.csv "$ten,event_timestamp" '$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,now'
  load "$work/$config" user_features "$file"
  measure "riffle one group, $label" 'fraud:{user:*' "$before" user_features@1
done

for v in 1 2; do
  cli flushall > /dev/null; before=$(used_memory)
  for g in velocity historical profile session; do load "$work/fraud-v$v.toml" "user_$g" "$g.csv"; done
  measure "riffle fraud 4 groups, v$v" 'fraud:{user:*' "$before" user_velocity@1 user_historical@1 user_profile@1 user_session@1
done

feast_py=${RIFFLE_FEAST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/riffle/feast-0.67}/bin/python
if "$feast_py" -c 'import feast, sys; sys.exit(feast.__version__ != "0.67.0")' 2> /dev/null; then
  cli flushall > /dev/null; before=$(used_memory)
  "$feast_py" bench/feast_memory.py write "$port" "$work/values" "$work/feast-repo" > "$work/feast.log" 2>&1 \
    || { cat "$work/feast.log"; exit 1; }
  "$feast_py" bench/feast_memory.py measure "$port" "Feast 0.67 (measured)" "$before" "$work/values"
else
  printf '%-34s %6s %7s %10s %14s %13s\n' "Feast 0.67 (issue 4's figure)" - - - 280 -
  echo "    quoted, not measured: no Feast 0.67 at $feast_py (scripts/test.sh installs it)"
fi
