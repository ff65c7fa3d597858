#!/usr/bin/env bash
# Training-set benchmark: how fast `riffle training-set` recomputes the fraud example's
# window features at past instants from an event history, and its peak memory. Not a test:
# it asserts nothing, it reports.
#
#   bench/training.sh [--events N] [--users N] [--spine N]
#   RIFFLE_BIN=path/to/riffle bench/training.sh ...   (measure another build of riffle)
#
# Needs: python3, GNU time (/usr/bin/time). One release build; the history is the ingest
# benchmark's generated events (a Zipf law over --users, one NDJSON file); the spine is
# --spine rows of random users at random instants within the history, with a label.
# Beside it Feast's get_historical_features and DuckDB's ASOF JOIN on the same batch-group
# history are the comparisons the offline half is judged by; they are not in this script yet.
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
users=100000
spine=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --spine) spine=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in python3 /usr/bin/time; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (apt-get install python3 time)" >&2; exit 1; }
done

echo "==> building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle --example ingest_bench
bin=${RIFFLE_BIN:-target/release/riffle}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
config=examples/fraud/riffle.toml

echo "==> generating $events events over $users users, and a spine of $spine rows"
target/release/examples/ingest_bench gen --config "$config" --source transactions \
  --events "$events" --users "$users" --out "$work/events.ndjson" > /dev/null
python3 - "$work/events.ndjson" "$work/spine.csv" "$spine" <<'PY'
import json, random, sys
events, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(7)
lo, hi, users = None, None, []
with open(events) as f:
    for i, line in enumerate(f):
        e = json.loads(line)
        t = e["event_time"] if isinstance(e["event_time"], int) else None
        if t is not None:
            lo = t if lo is None else min(lo, t)
            hi = t if hi is None else max(hi, t)
        if i % 10 == 0:
            users.append(e["user_id"])
with open(out, "w") as f:
    f.write("user_id,event_timestamp,label\n")
    for _ in range(n):
        f.write(f"{random.choice(users)},{random.randint(lo, hi)},{random.randint(0, 1)}\n")
PY

features=$(python3 - "$config" <<'PY'
import sys, tomllib
reg = tomllib.load(open(sys.argv[1], "rb"))
print(",".join(f"{g['name']}:{f['name']}" for g in reg["feature_groups"] if g.get("source") == "transactions"
               for f in g["features"] if "aggregation" in f))
PY
)
echo "==> riffle training-set: $(echo "$features" | tr ',' '\n' | wc -l) window features"
/usr/bin/time -v "$bin" training-set --config "$config" --spine "$work/spine.csv" \
  --events "transactions=$work/events.ndjson" --features "$features" --with-status \
  --out "$work/out.parquet" --json > "$work/summary.json" 2> "$work/time.txt"
python3 - "$work/summary.json" "$work/time.txt" "$events" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1])); t = open(sys.argv[2]).read(); events = int(sys.argv[3])
wall = s["elapsed_ms"] / 1000
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
user = float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1))
used = s["sources"]["transactions"]["used"]
print(f"{'events used':<28}{used:>14,}")
print(f"{'spine rows':<28}{s['rows']:>14,}")
print(f"{'wall / user CPU':<28}{wall:>11.2f} s / {user:.2f} s")
print(f"{'events/s (decode to Parquet)':<28}{events / wall:>14,.0f}")
print(f"{'spine rows/s':<28}{s['rows'] / wall:>14,.0f}")
print(f"{'peak RSS':<28}{rss:>11,.0f} MB")
PY
