#!/usr/bin/env bash
# Training-set benchmark: how fast `riffle training-set` answers a spine with the fraud
# example's features, beside Feast and DuckDB measured in the same run. Not a test: it
# asserts nothing, it reports.
#
#   bench/training.sh [--events N] [--users N] [--spine N] [--rows-per-user K] [--feast-spine N]
#   RIFFLE_BIN=path/to/riffle bench/training.sh ...   (measure another build of riffle)
#
# The issue's judged size: bench/training.sh --events 10000000 --spine 1000000 (the
# defaults, 1M events and 100,000 spine rows, take a few minutes on two cores).
#
# Two parts, on one spine (--spine rows of random users of the event history, as often as
# they appear in it, at random instants within it, with a label; Parquet):
#   window   riffle training-set with every window feature of the fraud example, replayed
#            from the ingest benchmark's generated events (a Zipf law over --users, one
#            NDJSON file): events/s, spine rows/s, peak RSS
#   as-of    the groups without a source (batch groups): --rows-per-user rows per user and
#            group at random times over 1.5× the group's ttl, one Parquet file per group;
#            the same spine answered by riffle training-set --history, by DuckDB's
#            ASOF JOIN and by Feast 0.67's get_historical_features (file offline store, a
#            feature view per group with the group's ttl; Feast cannot compute the
#            windows, so it is compared here only). --feast-spine N runs Feast on the
#            spine's first N rows only (default: all), compared in rows/s; Feast's time is
#            mostly reading and sorting the history, so a subset flatters riffle.
# Riffle is timed by its --json summary's elapsed_ms (reading the spine and history,
# answering, writing Parquet); DuckDB and Feast by time.perf_counter around the call alone
# (the spine already in a DataFrame for Feast; DuckDB reads both Parquet files, writes
# nothing). The values are checked against each other where riffle serves the row's own
# value (fresh or stale): a sanity check, printed.
#
# Needs: python3, GNU time (/usr/bin/time). Feast 0.67 and DuckDB are installed (once) into
# the virtualenv scripts/test.sh uses: ${XDG_CACHE_HOME:-~/.cache}/riffle/feast-0.67
# (RIFFLE_FEAST_VENV overrides), from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
users=100000
spine=100000
per_user=10
feast_spine=0
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --spine) spine=$2; shift 2 ;;
    --rows-per-user) per_user=$2; shift 2 ;;
    --feast-spine) feast_spine=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$feast_spine" -gt 0 ] && [ "$feast_spine" -le "$spine" ] || feast_spine=$spine
for tool in python3 /usr/bin/time; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (apt-get install python3 python3-venv time)" >&2; exit 1; }
done

venv=${RIFFLE_FEAST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/riffle/feast-0.67}
if ! "$venv/bin/python" -c 'import feast, sys; sys.exit(feast.__version__ != "0.67.0")' 2> /dev/null; then
  echo "==> installing Feast 0.67 into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'feast[redis]==0.67.0'
fi
if ! "$venv/bin/python" -c 'import duckdb' 2> /dev/null; then
  echo "==> installing DuckDB into $venv (once)"
  "$venv/bin/pip" install -q duckdb
fi
py="$venv/bin/python"
asof=bench/training_asof.py

echo "==> building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle --example ingest_bench
bin=${RIFFLE_BIN:-target/release/riffle}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/history" "$work/results"
config=examples/fraud/riffle.toml

echo "==> generating $events events over $users users"
target/release/examples/ingest_bench gen --config "$config" --source transactions \
  --events "$events" --users "$users" --out "$work/events.ndjson" > /dev/null
echo "==> generating a spine of $spine rows"
"$py" "$asof" spine "$work/events.ndjson" "$spine" "$work/spine.parquet"
echo "==> generating the batch groups' history ($per_user rows per user and group)"
batch_features=$("$py" "$asof" history "$config" "$work/spine.parquet" "$users" "$per_user" "$work/history")
history_args=()
for f in "$work"/history/*.parquet; do
  history_args+=(--history "$(basename "$f" .parquet)=$f")
done

window_features=$(python3 - "$config" <<'PY'
import sys, tomllib
reg = tomllib.load(open(sys.argv[1], "rb"))
print(",".join(f"{g['name']}:{f['name']}" for g in reg["feature_groups"] if g.get("source") == "transactions"
               for f in g["features"] if "aggregation" in f))
PY
)

# riffle training-set under GNU time; $1 names the result, the rest are its arguments.
riffle_run() {
  local name=$1
  shift
  /usr/bin/time -v "$bin" training-set --config "$config" --spine "$work/spine.parquet" \
    --with-status --out "$work/$name.parquet" --json "$@" > "$work/$name.summary" 2> "$work/$name.time"
  python3 - "$work/$name.summary" "$work/$name.time" "$work/results/$name.json" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1])); t = open(sys.argv[2]).read()
m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", t)
json.dump({
    "rows": s["rows"], "features": s["features"], "seconds": s["elapsed_ms"] / 1000,
    "process_wall": int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3)),
    "user_cpu": float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1)),
    "rss_mb": int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024,
    "used": sum(x["used"] for x in list(s["sources"].values()) + list(s["groups"].values())),
    "groups": sorted(s["groups"]),
}, open(sys.argv[3], "w"))
PY
}

echo "==> window part: riffle training-set, $(echo "$window_features" | tr ',' '\n' | wc -l) window features"
riffle_run window --events "transactions=$work/events.ndjson" --features "$window_features"
echo "==> as-of part: riffle training-set, $(echo "$batch_features" | tr ',' '\n' | wc -l) batch-group features"
riffle_run asof "${history_args[@]}" --features "$batch_features"
echo "==> as-of part: DuckDB ASOF JOIN"
"$py" "$asof" duckdb "$config" "$work/spine.parquet" "$work/history" "$work/asof.parquet" "$work/results/duckdb.json"
echo "==> as-of part: Feast get_historical_features ($feast_spine spine rows)"
"$py" "$asof" feast "$config" "$work/spine.parquet" "$work/history" "$feast_spine" "$work/asof.parquet" "$work/results/feast.json"

python3 - "$work/results/env.json" "$events" "$users" "$spine" "$per_user" <<'PY'
import json, os, platform, sys
out, events, users, spine, k = sys.argv[1:]
json.dump({"events": int(events), "users": int(users), "spine": int(spine), "rows_per_user": int(k),
           "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.platform(terse=True)}, "
                      f"load average {os.getloadavg()[1]:.1f} over the last 5 min"}, open(out, "w"))
PY
"$py" "$asof" report "$work/results"
