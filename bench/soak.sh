#!/usr/bin/env bash
# Soak benchmark: the fraud example's whole deployment under its traffic for a long run, with
# faults along the way, watched from outside; at the end the served values against an oracle.
# Not a test: it asserts nothing and exits 0 unless the setup itself failed. It reports.
#
#   bench/soak.sh [--minutes 30] [--rate EV_PER_S] [--users N] [--read-rate RPS]
#                 [--outage SECONDS] [--lag-threshold DURATION] [--kill-worker 1|2]
#                 [--idempotence true|false] [--sample-every SECONDS] [--keep-data]
#   RIFFLE_BIN=path/to/riffle bench/soak.sh ...   (soak another build of riffle)
#
# What runs (release build, loopback, one machine):
#   redis-server   --appendonly yes --appendfsync everysec in the run's directory
#   tansu          the Kafka-protocol broker, its log in a fresh PostgreSQL database (dropped
#                  at the end); topic `transactions`, 4 partitions
#   riffle serve   on that Redis, read all along by `riffle loadtest` (open loop, the stream
#                  groups, --read-rate requests/s): serving errors are counted
#   riffle ingest  two workers in one consumer group (each its own --listen for /health)
#   producer       the fraud example's traffic (the generator `riffle demo` runs: power-law
#                  users, cold starts, 3 s of disorder, a 5–10x burst of 5 s every minute) at
#                  --rate events/s, keyed by user, idempotent
# Faults: at 25% Redis is shut down gracefully (SHUTDOWN) and started again on the same port
# and directory after --outage seconds; at 50% a worker is SIGKILLed and a replacement started
# after --outage seconds; at 75% the broker is stopped (SIGTERM) and started again on the
# same database after --outage seconds.
# Every --sample-every seconds a row goes to samples.csv in the run's directory: RSS and
# open fds of every process, each worker's /health, `riffle lag --json` (exit code, lags).
# Serve's /metrics (breaker, store errors, unavailable values) and Redis's latency monitor
# (events of 25 ms or more: fsyncs, commands) are sampled too.
# At the end: production stops, ingest catches up (committed = end offset on every
# partition), the topic is dumped by a bare consumer (merged by event time, each partition's
# order kept) and replayed by `riffle ingest --from` into a fresh store served by a second
# `riffle serve --no-cache`, and every user's stream groups are compared between the two
# servers. Tables: processes, faults and recovery, serving errors, ingest stalls, dead
# letters, the oracle comparison.
#
# The oracle's store is a second Redis rather than an embedded store, and its ingest keeps
# running (`--from FILE --follow`): windows move with the clock (a row is rewritten when a
# tile leaves its window, and a file source's rows age by its worker's published watermark),
# so an oracle replayed once and frozen would differ from the live store for every user whose
# tiles expired in between, and an embedded store cannot be served while ingest holds it.
#
# Needs: redis-server, redis-cli, curl, python3, psql and a PostgreSQL server (SOAK_PG, default
# postgres://postgres@127.0.0.1:5432, a role allowed to create databases), and tansu 0.6.0
# built with its postgres storage engine (the one scripts/test.sh installs has only memory
# storage, whose log a restart loses): TANSU_PG (default
# ~/.cache/riffle-soak/tansu-postgres/bin/tansu, installed there by cargo when missing, ~15 min
# once). What running tansu on PostgreSQL takes, found out here:
#   - tansu does not create its schema: it is tansu's etc/initdb.d/010-schema.sql at tag
#     v0.6.0 (not in the crate; TANSU_PG_SCHEMA, default ~/.cache/riffle-soak/
#     tansu-0.6.0-initdb.sql, downloaded from GitHub when missing), applied to each run's
#     fresh database; the broker then registers its cluster and topics itself.
#   - `?sslmode=disable` on a loopback server whose certificate is self-signed for
#     "localhost": tansu checks the certificate against the host name and fails on 127.0.0.1.
#   - Topics, offsets and committed positions survive a broker restart; idempotent producers
#     are accepted; a fetch may start inside a producer batch (records are rows).
#   - On PostgreSQL before 16 tansu's read-committed ListOffsets for the latest offset fails
#     (its query has a subquery without an alias) and tansu closes the connection; `riffle
#     lag` asks for the read-uncommitted end, as Kafka's own tools do, which works. The
#     backlog is also computed here from the producer's acknowledged offsets, a check on
#     `riffle lag`'s figures that does not go through the broker's ListOffsets or fetches.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30
rate=2000
users=100000
read_rate=200
outage=10
lag_threshold=30s
kill_worker=1
idempotence=true
sample_every=10
keep_data=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --read-rate) read_rate=$2; shift 2 ;;
    --outage) outage=$2; shift 2 ;;
    --lag-threshold) lag_threshold=$2; shift 2 ;;
    --kill-worker) kill_worker=$2; shift 2 ;;
    --idempotence) idempotence=$2; shift 2 ;;
    --sample-every) sample_every=$2; shift 2 ;;
    --keep-data) keep_data=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$kill_worker" in 1 | 2) ;; *) echo "--kill-worker: 1 or 2" >&2; exit 2 ;; esac
export PATH="$HOME/.cargo/bin:$PATH"
for tool in redis-server redis-cli curl python3 psql cargo; do
  command -v "$tool" > /dev/null || { echo "soak needs $tool" >&2; exit 1; }
done
pg_base=${SOAK_PG:-postgres://postgres@127.0.0.1:5432}
cache=$HOME/.cache/riffle-soak
tansu=${TANSU_PG:-$cache/tansu-postgres/bin/tansu}
schema=${TANSU_PG_SCHEMA:-$cache/tansu-0.6.0-initdb.sql}
mkdir -p "$cache"

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if ! { [ -x "$tansu" ] && "$tansu" --help 2> /dev/null | grep -q 'Storage engines:.*postgres'; }; then
  say "installing tansu 0.6.0 with its postgres storage engine into $cache/tansu-postgres (cargo install, once; ~15 min)"
  cargo install -q tansu --version 0.6.0 --locked --features dynostore,postgres --root "$cache/tansu-postgres"
  tansu=$cache/tansu-postgres/bin/tansu
fi
if [ ! -s "$schema" ]; then
  say "fetching tansu 0.6.0's PostgreSQL schema (etc/initdb.d/010-schema.sql) into $schema"
  curl -fsSL https://raw.githubusercontent.com/tansu-io/tansu/v0.6.0/etc/initdb.d/010-schema.sql -o "$schema.tmp" \
    && mv "$schema.tmp" "$schema" \
    || { echo "no tansu schema: put tansu v0.6.0's etc/initdb.d/010-schema.sql at $schema (or TANSU_PG_SCHEMA)" >&2; exit 1; }
fi

say "building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle --example soak
bin=${RIFFLE_BIN:-target/release/riffle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tool=$PWD/target/release/examples/soak

work=$(mktemp -d /tmp/riffle-soak.XXXXXX)
mkdir -p "$work/pids" "$work/redis" "$work/w1" "$work/w2" "$work/w3" "$work/oracle"
say "work dir: $work (kept: samples.csv, timeline.csv, logs)"
db="riffle_soak_$(date +%Y%m%d_%H%M%S)_$$"
db_created=0
pids=()
cleanup() {
  set +e
  [ -n "${sampler_pid:-}" ] && touch "$work/sampler.stop"
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
  wait 2> /dev/null
  if [ "$db_created" = 1 ]; then
    psql "$pg_base/postgres" -q -c "drop database if exists $db with (force)" > /dev/null 2>&1 \
      && echo "dropped database $db" || echo "could not drop database $db" >&2
  fi
  if [ "$keep_data" = 0 ]; then
    rm -rf "$work/redis" "$work/oracle-redis" "$work/events.ndjson"
  fi
  echo "work dir kept: $work"
}
trap cleanup EXIT

ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(11)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r redis_port kafka_port serve_port w1_port w2_port w3_port oredis_port oserve_port oingest_port spare1 spare2 <<< "$ports"
brokers=127.0.0.1:$kafka_port
store=redis://127.0.0.1:$redis_port
topic=transactions
group=riffle-soak
partitions=4
# Redis records events (an fsync, a command…) that take this long or more; half of serve's
# store timeout (50 ms in the fraud example), so the samples show what made reads time out.
redis_slow_ms=25
wait_http() { for _ in $(seq 1 400); do curl -fsS "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 1 400); do (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0; sleep 0.05; done; return 1; }
field() { tr ' ' '\n' <<< "$1" | sed -n "s/^$2=//p"; }
# Seconds since the soak started (set when traffic starts).
t0=$EPOCHREALTIME
el() { awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.0f", a - b }'; }
event() {
  local t
  t=$(el)
  printf '%s,%s,"%s"\n' "$t" "$1" "${2//\"/\'}" >> "$work/timeline.csv"
  say "t=${t}s  $1${2:+: $2}"
}
echo "t_s,event,detail" > "$work/timeline.csv"

# The fraud example; ports are given by flags, so the file is used as it is.
config=$work/riffle.toml
cp examples/fraud/riffle.toml "$config"
read -r source_name entity stream_groups max_batch cache_ttl_ms < <(python3 -c '
import re, sys, tomllib
r = tomllib.load(open(sys.argv[1], "rb"))
src = next(s for s in r["sources"] if s.get("kind") == "kafka")
groups = [g for g in r["feature_groups"] if g.get("source") == src["name"]]
def ms(text):
    n, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", text).groups()
    return int(n) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[unit]
ttl = max([ms(g.get("cache_ttl", "0s")) for g in groups] + [ms(r.get("serve", {}).get("cache", {}).get("ttl", "5s"))])
print(src["name"], src["entity"], ",".join(g["name"] for g in groups), r.get("serve", {}).get("max_batch", 1000), ttl)' "$config")
say "source $source_name (entity $entity) feeds $stream_groups; compare batches of $max_batch"

# --- PostgreSQL database for tansu ----------------------------------------------------------
say "postgres: database $db with tansu's schema"
psql "$pg_base/postgres" -q -v ON_ERROR_STOP=1 -c "create database $db" > /dev/null
db_created=1
psql "$pg_base/$db" -q -v ON_ERROR_STOP=1 -f "$schema" > "$work/schema.log" 2>&1
# sslmode=disable: tansu verifies the server certificate by the host name, and a local server
# with a self-signed "localhost" certificate fails at 127.0.0.1 (InvalidCertificate).
pg_url="$pg_base/$db?sslmode=disable"

# --- processes -------------------------------------------------------------------------------
track() { echo "$2" > "$work/pids/$1"; pids+=("$2"); }
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes \
    --appendfsync everysec --save "" --latency-monitor-threshold "$redis_slow_ms" >> "$work/redis.log" 2>&1 &
  track redis $!
  for _ in $(seq 1 600); do
    [ "$(redis-cli -p "$redis_port" ping 2> /dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "redis did not come up (see $work/redis.log)" >&2
  return 1
}
start_tansu() {
  (cd "$work" && exec "$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
    --storage-engine "$pg_url" >> "$work/tansu.log" 2>&1) &
  track tansu $!
  wait_port "$kafka_port" || { echo "tansu did not listen (see $work/tansu.log)" >&2; return 1; }
}
start_worker() { # NAME PORT
  (cd "$work/$1" && exec "$bin" ingest --config "$config" --source "$source_name" --store "$store" \
    --brokers "$brokers" --topic "$topic" --group-id "$group" --listen "127.0.0.1:$2" >> "$work/$1.log" 2>&1) &
  track "$1" $!
}
pid_of() { cat "$work/pids/$1" 2> /dev/null || true; }
wait_gone() { # PID SECONDS
  for _ in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  return 1
}

say "starting redis on $redis_port (appendonly, appendfsync everysec)"
start_redis
say "starting tansu on $brokers (storage $pg_url)"
start_tansu
created=0
for _ in $(seq 1 50); do
  if "$tansu" topic create --broker "tcp://$brokers" --partitions "$partitions" "$topic" >> "$work/tansu-topic.log" 2>&1; then
    created=1
    break
  fi
  sleep 0.2
done
[ "$created" = 1 ] || { echo "could not create topic $topic (see $work/tansu-topic.log)" >&2; exit 1; }
say "starting riffle serve on $serve_port and ingest workers w1 ($w1_port), w2 ($w2_port)"
"$bin" serve --config "$config" --store "$store" --listen "127.0.0.1:$serve_port" > "$work/serve.log" 2>&1 &
track serve $!
start_worker w1 "$w1_port"
sleep 1 # w1 joins first: it is the group's first member (its leader on tansu)
start_worker w2 "$w2_port"
wait_http "http://127.0.0.1:$serve_port/health" || true
curl -fsS "http://127.0.0.1:$serve_port/health" > /dev/null || { echo "riffle serve did not start (see $work/serve.log)" >&2; exit 1; }
for w in w1 w2; do
  kill -0 "$(pid_of $w)" 2> /dev/null || { echo "ingest worker $w died at start (see $work/$w.log)" >&2; exit 1; }
done
sleep 3

# --- sampler ---------------------------------------------------------------------------------
cat > "$work/sampler.py" << 'PY'
# One CSV row every interval: per process RSS and fds, each worker's /health, `riffle lag`.
import csv, json, os, subprocess, sys, time, urllib.request, urllib.error
cfg = json.load(open(sys.argv[1]))
work, interval, t0 = cfg["work"], cfg["interval"], cfg["t0"]
roles = ["serve", "w1", "w2", "w3", "redis", "tansu"]
workers = ["w1", "w2", "w3"]
cols = ["t_s", "produced", "delivered", "failed", "in_queue"]
for r in roles:
    cols += [f"{r}_pid", f"{r}_rss_kb", f"{r}_fds", f"{r}_cpu_s"]
cols += ["serve_health", "breaker_state", "store_errors", "unavailable_values", "http_5xx",
         "redis_slow_s", "redis_slow_max_ms", "redis_slow_events"]
for w in workers:
    cols += [f"{w}_health", f"{w}_reasons"]
cols += ["lag_exit", "lag_status", "lag_ms", "broker_lag_ms", "lag_messages", "committed", "end_offset", "unowned",
         "topic_end", "behind_msgs", "lag_problems", "lag_secs"]
out = open(os.path.join(work, "samples.csv"), "w", newline="")
writer = csv.DictWriter(out, fieldnames=cols)
writer.writeheader()
out.flush()
lag_log = open(os.path.join(work, "lag-samples.jsonl"), "a")

TICK = os.sysconf("SC_CLK_TCK")

def proc(pid):
    try:
        rss = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        if rss is None:
            return None
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / TICK
        return rss, len(os.listdir(f"/proc/{pid}/fd")), "%.1f" % cpu
    except (OSError, ValueError, IndexError):
        return None

def metric_sum(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`; None when absent."""
    total = None
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        base, _, rest = head.partition("{")
        if base not in (name, name + "_total"):
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            try:
                total = (total or 0) + float(value)
            except ValueError:
                pass
    return total

def http(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return str(r.status), r.read()
    except urllib.error.HTTPError as e:
        return str(e.code), e.read()
    except Exception:
        return "down", b""

seen_latency = set()

def redis_latency(row):
    """Seconds since the last sample in which Redis saw an event (fsync, command…) at or
    above its latency-monitor-threshold, from LATENCY LATEST / HISTORY (one entry per
    second per event)."""
    cli = ["redis-cli", "-p", str(cfg["redis_port"])]
    try:
        latest = subprocess.run(cli + ["latency", "latest"], capture_output=True, text=True, timeout=5).stdout.split()
    except Exception:
        return
    slow_s, worst, names = set(), 0, set()
    for name in latest[0::4]:
        try:
            hist = subprocess.run(cli + ["latency", "history", name], capture_output=True, text=True, timeout=5).stdout.split()
        except Exception:
            continue
        for ts, ms in zip(hist[0::2], hist[1::2]):
            key = (cfg["redis_pid_file_tag"], name, ts)
            if key in seen_latency:
                continue
            seen_latency.add(key)
            slow_s.add(ts)
            worst = max(worst, int(ms))
            names.add(name)
    row["redis_slow_s"], row["redis_slow_max_ms"], row["redis_slow_events"] = len(slow_s), worst or "", " ".join(sorted(names))

next_at = time.time()
while not os.path.exists(os.path.join(work, "sampler.stop")):
    row = {"t_s": "%.0f" % (time.time() - t0)}
    ends = {}
    try:
        status = dict(kv.split("=", 1) for kv in open(cfg["status"]).read().split())
        for k in ["produced", "delivered", "failed", "in_queue"]:
            row[k] = status.get(k, "")
        ends = {int(p): int(e) for p, e in (x.split(":") for x in status.get("ends", "").split(",") if x)}
        row["topic_end"] = sum(ends.values())
    except (OSError, ValueError):
        pass
    for r in roles:
        try:
            pid = open(os.path.join(work, "pids", r)).read().strip()
        except OSError:
            continue
        got = proc(pid)
        if got:
            row[f"{r}_pid"], row[f"{r}_rss_kb"], row[f"{r}_fds"], row[f"{r}_cpu_s"] = pid, got[0], got[1], got[2]
    if row.get("redis_pid"):
        cfg["redis_pid_file_tag"] = row["redis_pid"]
        redis_latency(row)
    row["serve_health"] = http(cfg["serve_health"])[0]
    code, body = http(cfg["serve_metrics"])
    if code == "200":
        text = body.decode("utf-8", "replace")
        for col, args in [("breaker_state", ("riffle_breaker_state",)), ("store_errors", ("riffle_store_errors",)),
                          ("unavailable_values", ("riffle_values_served", {"status": "unavailable"})),
                          ("http_5xx", ("riffle_http_requests", {"status_class": "5xx"}))]:
            v = metric_sum(text, args[0], **(args[1] if len(args) > 1 else {}))
            row[col] = "" if v is None else "%.0f" % v
    for w in workers:
        if not row.get(f"{w}_pid"):
            continue
        code, body = http(cfg["health"][w])
        row[f"{w}_health"] = code
        try:
            row[f"{w}_reasons"] = " | ".join(json.loads(body).get("reasons", []))
        except Exception:
            row[f"{w}_reasons"] = "" if code == "200" else "no answer"
    started = time.time()
    try:
        p = subprocess.run(cfg["lag_cmd"], capture_output=True, text=True, timeout=60)
        row["lag_exit"] = p.returncode
        try:
            report = json.loads(p.stdout)
            lag_log.write(json.dumps({"t_s": row["t_s"], "exit": p.returncode, "report": report}) + "\n")
            s = report["sources"][0]
            parts = s.get("partitions") or []
            row["lag_status"] = s.get("status")
            row["lag_ms"] = s.get("lag_ms")
            lags = [q["lag_ms"] for q in parts if q.get("lag_ms") is not None]
            row["broker_lag_ms"] = max(lags) if lags else ""
            row["lag_messages"] = sum(q.get("lag_messages") or 0 for q in parts)
            row["committed"] = sum(q.get("committed") or 0 for q in parts)
            row["end_offset"] = sum(q.get("end_offset") or 0 for q in parts)
            row["unowned"] = sum(1 for q in parts if not q.get("owner"))
            # Messages behind by the producer's acknowledged ends: a check on riffle lag's
            # own end offsets (see the script's notes on tansu and PostgreSQL).
            if ends and parts and all(q.get("committed") is not None for q in parts):
                row["behind_msgs"] = sum(max(0, ends.get(q["partition"], 0) - (q.get("committed") or 0)) for q in parts)
            row["lag_problems"] = " | ".join(s.get("problems") or [])
        except (ValueError, KeyError, IndexError):
            err = (p.stderr or "").strip().splitlines()
            row["lag_problems"] = err[-1] if err else "no report"
            lag_log.write(json.dumps({"t_s": row["t_s"], "exit": p.returncode, "error": row["lag_problems"]}) + "\n")
    except subprocess.TimeoutExpired:
        row["lag_exit"] = "timeout"
    row["lag_secs"] = "%.1f" % (time.time() - started)
    writer.writerow(row)
    out.flush()
    lag_log.flush()
    next_at += interval
    while time.time() < next_at and not os.path.exists(os.path.join(work, "sampler.stop")):
        time.sleep(0.2)
PY

seconds=$((minutes * 60))
t0=$EPOCHREALTIME
python3 - "$work/sampler.json" << PY
import json
json.dump({
    "work": "$work", "interval": $sample_every, "t0": ${t0/,/.},
    "status": "$work/producer.status",
    "serve_health": "http://127.0.0.1:$serve_port/health",
    "serve_metrics": "http://127.0.0.1:$serve_port/metrics",
    "redis_port": $redis_port,
    "health": {"w1": "http://127.0.0.1:$w1_port/health", "w2": "http://127.0.0.1:$w2_port/health",
               "w3": "http://127.0.0.1:$w3_port/health"},
    "lag_cmd": ["$bin", "lag", "--config", "$config", "--store", "$store", "--source", "$source_name",
                "--brokers", "$brokers", "--topic", "$topic", "--group-id", "$group",
                "--threshold", "$lag_threshold", "--json"],
}, open("$work/sampler.json", "w"))
PY
python3 "$work/sampler.py" "$work/sampler.json" 2> "$work/sampler.log" &
sampler_pid=$!
pids+=("$sampler_pid")

# --- traffic ---------------------------------------------------------------------------------
event start "producing ${rate} events/s (+bursts) over $users users for ${minutes} min; loadtest ${read_rate} req/s on $stream_groups"
"$tool" produce --config "$config" --source "$source_name" --brokers "$brokers" --topic "$topic" \
  --rate "$rate" --users "$users" --seconds "$seconds" --idempotence "$idempotence" \
  --status "$work/producer.status" > "$work/producer.out" 2> "$work/producer.log" &
producer_pid=$!
pids+=("$producer_pid")
"$bin" loadtest --config "$config" --target "http://127.0.0.1:$serve_port" --rate "$read_rate" \
  --duration "${seconds}s" --groups "$stream_groups" --users "$users" --quiet --json \
  --record "$work/loadtest-record.json" > "$work/loadtest.json" 2> "$work/loadtest.log" &
loadtest_pid=$!
pids+=("$loadtest_pid")

progress() {
  python3 - "$work/samples.csv" << 'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if not rows:
    print("no sample yet"); sys.exit()
r = rows[-1]
def mb(k): return "%.0f" % (int(r[k]) / 1024) if r.get(k) else "-"
lag = "%.1f s" % (int(r["lag_ms"]) / 1000) if r.get("lag_ms") else "-"
print("produced %s (%s acked, %s failed) | lag %s, riffle lag exit %s, %s msgs uncommitted | health w1 %s w2 %s w3 %s | RSS MB serve %s w1 %s w2 %s w3 %s redis %s tansu %s" % (
    r.get("produced") or "-", r.get("delivered") or "-", r.get("failed") or "-", lag, r.get("lag_exit") or "-",
    r.get("behind_msgs") or "-", r.get("w1_health") or "-", r.get("w2_health") or "-", r.get("w3_health") or "-",
    mb("serve_rss_kb"), mb("w1_rss_kb"), mb("w2_rss_kb"), mb("w3_rss_kb"), mb("redis_rss_kb"), mb("tansu_rss_kb")))
PY
}
# Sleeps until `el` reaches $1, with a progress line every minute.
until_t() {
  local last=-1 now
  while :; do
    now=$(el)
    [ "$now" -ge "$1" ] && return 0
    if [ $((now / 60)) -ne "$last" ] && [ "$now" -ge 20 ]; then
      last=$((now / 60))
      say "t=${now}s/${seconds}s  $(progress)"
    fi
    sleep 1
  done
}

redis_restart() {
  local keys pid down
  # A marker written just before SHUTDOWN must be there after the restart (SHUTDOWN writes the AOF out).
  marker=$EPOCHREALTIME
  redis-cli -p "$redis_port" set soak:marker "$marker" ex 86400 > /dev/null
  keys=$(redis-cli -p "$redis_port" dbsize 2> /dev/null || echo "?")
  pid=$(pid_of redis)
  event redis_shutdown "SHUTDOWN (graceful); $keys keys"
  redis-cli -p "$redis_port" shutdown > /dev/null 2>&1 || true
  wait_gone "$pid" 30 || { kill -9 "$pid" 2> /dev/null || true; event redis_shutdown_forced "SHUTDOWN did not stop it in 30 s: SIGKILL"; }
  wait "$pid" 2> /dev/null || true
  down=$EPOCHREALTIME
  sleep "$outage"
  start_redis
  local after kept
  after=$(redis-cli -p "$redis_port" dbsize)
  kept=no
  [ "$(redis-cli -p "$redis_port" get soak:marker)" = "$marker" ] && kept=yes
  event redis_up "same port and dir, down $(awk -v a="$EPOCHREALTIME" -v b="$down" 'BEGIN{printf "%.1f", a-b}') s; $after keys after loading the AOF (before: $keys; ingest may have written since); the marker written before SHUTDOWN survived: $kept"
}
worker_kill() {
  local name=w$kill_worker pid
  pid=$(pid_of "$name")
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  event worker_sigkill "$name (pid $pid) SIGKILLed"
  sleep "$outage"
  start_worker w3 "$w3_port"
  event worker_replacement "w3 (pid $(pid_of w3)) started, /health on $w3_port"
}
broker_restart() {
  local pid
  pid=$(pid_of tansu)
  event broker_stop "tansu (pid $pid) SIGTERM"
  kill -TERM "$pid" 2> /dev/null || true
  if ! wait_gone "$pid" 20; then
    kill -9 "$pid" 2> /dev/null || true
    event broker_stop_forced "tansu did not exit 20 s after SIGTERM: SIGKILL"
  fi
  wait "$pid" 2> /dev/null || true
  sleep "$outage"
  start_tansu
  event broker_up "tansu started again on the same database (pid $(pid_of tansu))"
}

until_t $((seconds / 4))
redis_restart
until_t $((seconds / 2))
worker_kill
until_t $((seconds * 3 / 4))
broker_restart
until_t "$seconds"

say "waiting for the producer's last acknowledgements"
wait "$producer_pid" || true
produced=$(cat "$work/producer.out")
event producer_done "$produced"
wait "$loadtest_pid" || true
curl -s "http://127.0.0.1:$serve_port/metrics" > "$work/serve-metrics-end.txt" || true
event loadtest_done "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("sent %d, ok %d, p99 %.1f ms" % (r["sent"], r["ok"], r["latency_ms"]["p99"]))' "$work/loadtest.json" 2> /dev/null || echo "no report (see loadtest.log)")"

# --- catch up --------------------------------------------------------------------------------
# Caught up = the group's committed offset (`riffle lag --json`, OffsetFetch) at the end of
# every partition. The end is what the producer had acknowledged, then what the dump read,
# so that the end does not rest on the figures being checked.
cat > "$work/caught.py" << 'PY'
import json, sys
ends = {int(p): int(e) for p, e in (x.split(":") for x in sys.argv[1].split(",") if x)}
try:
    s = json.load(sys.stdin)["sources"][0]
    parts = {p["partition"]: p.get("committed") for p in s.get("partitions") or []}
except Exception:
    print("unknown riffle-lag-gave-no-report"); sys.exit()
done = bool(ends) and all(parts.get(p) is not None and parts[p] >= e for p, e in ends.items())
print("yes" if done else "no", ",".join("%s:%s/%s" % (p, parts.get(p), e) for p, e in sorted(ends.items())))
PY
wait_caught_up() { # ENDS LIMIT_SECONDS
  local start=$EPOCHREALTIME last=0 now
  caught=0
  while :; do
    state=$("$bin" lag --config "$config" --store "$store" --source "$source_name" --brokers "$brokers" \
      --topic "$topic" --group-id "$group" --threshold "$lag_threshold" --json 2> /dev/null \
      | python3 "$work/caught.py" "$1" || echo "unknown -")
    [ "${state%% *}" = yes ] && { caught=1; break; }
    now=$(awk -v a="$EPOCHREALTIME" -v b="$start" 'BEGIN{printf "%.0f", a-b}')
    [ "$now" -ge "$2" ] && break
    if [ $((now - last)) -ge 10 ]; then say "  committed/end per partition: ${state#* }"; last=$now; fi
    sleep 1
  done
  catch_secs=$(awk -v a="$EPOCHREALTIME" -v b="$start" 'BEGIN{printf "%.0f", a-b}')
}
producer_ends=$(field "$produced" ends)
say "waiting for ingest to catch up: committed offsets at the acknowledged end of every partition ($producer_ends)"
wait_caught_up "$producer_ends" 900
if [ "$caught" = 1 ]; then
  event caught_up "${catch_secs} s after production stopped: ${state#* } (committed/end)"
else
  event not_caught_up "gave up after ${catch_secs} s: ${state#* } (committed/end)"
fi
sleep "$sample_every"
touch "$work/sampler.stop"
wait "$sampler_pid" 2> /dev/null || true

# --- oracle ----------------------------------------------------------------------------------
say "dumping the topic with a bare consumer (merged by event time)"
dumped=$("$tool" dump --config "$config" --source "$source_name" --brokers "$brokers" --topic "$topic" \
  --out "$work/events.ndjson" --users-out "$work/users.txt" 2> "$work/dump.log")
event topic_dumped "$dumped"
messages=$(field "$dumped" messages)
dump_ends=$(field "$dumped" ends)
if [ "$dump_ends" != "$producer_ends" ]; then
  event ends_differ "the topic holds $dump_ends, the producer had acknowledged $producer_ends: waiting for those"
  wait_caught_up "$dump_ends" 300
  event "caught_up_$caught" "${state#* }"
fi

# The oracle's windows must move with the clock as the live ones do (a row is rewritten when
# a tile leaves its window), so its ingest keeps running (--follow) on a store of its own
# that a second server reads while it runs: an embedded store is one process's at a time.
say "oracle: riffle ingest --from the dump into a fresh store"
mkdir -p "$work/oracle-redis"
redis-server --port "$oredis_port" --bind 127.0.0.1 --dir "$work/oracle-redis" --save "" --appendonly no \
  > "$work/oracle-redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ "$(redis-cli -p "$oredis_port" ping 2> /dev/null)" = PONG ] && break; sleep 0.05; done
(cd "$work/oracle" && exec "$bin" ingest --config "$config" --source "$source_name" --store "redis://127.0.0.1:$oredis_port" \
  --from "$work/events.ndjson" --follow --listen "127.0.0.1:$oingest_port" > "$work/oracle-ingest.log" 2>&1) &
oracle_ingest_pid=$!
pids+=("$oracle_ingest_pid")
oracle_read=0
for _ in $(seq 1 1800); do
  oracle_read=$(curl -s "http://127.0.0.1:$oingest_port/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_read"])' 2> /dev/null || echo 0)
  [ "$oracle_read" -ge "$messages" ] && break
  kill -0 "$oracle_ingest_pid" 2> /dev/null || { echo "oracle ingest died (see $work/oracle-ingest.log)" >&2; break; }
  sleep 1
done
sleep 2 # a flush or two more
event oracle_replayed "$oracle_read of $messages events read and durable"
"$bin" serve --config "$config" --store "redis://127.0.0.1:$oredis_port" --listen "127.0.0.1:$oserve_port" --no-cache \
  > "$work/oracle-serve.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$oserve_port/health"
sleep 2 # serve reads the sources' watermarks every second
say "comparing $stream_groups for every user that had events (live serve vs oracle serve)"
"$tool" compare --live "http://127.0.0.1:$serve_port" --oracle "http://127.0.0.1:$oserve_port" --entity "$entity" \
  --groups "$stream_groups" --ids "$work/users.txt" --batch "$max_batch" --retry-wait-ms $((cache_ttl_ms + 500)) \
  > "$work/compare.out" 2> "$work/compare.log" || echo "compare failed (see $work/compare.log)" >> "$work/compare.out"
event compared "$(head -1 "$work/compare.out")"

# --- stop ------------------------------------------------------------------------------------
say "stopping ingest workers (SIGTERM: their last flush and commit)"
for w in w1 w2 w3 oracle-ingest; do
  if [ "$w" = oracle-ingest ]; then pid=$oracle_ingest_pid; else pid=$(pid_of "$w"); fi
  [ -n "$pid" ] && kill -TERM "$pid" 2> /dev/null && { wait_gone "$pid" 30 || kill -9 "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; } || true
done

# --- report ----------------------------------------------------------------------------------
cat > "$work/report.py" << 'PY'
import csv, json, os, re, sys
from collections import Counter, defaultdict
work, threshold_ms, kill_worker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = list(csv.DictReader(open(os.path.join(work, "samples.csv"))))
timeline = list(csv.DictReader(open(os.path.join(work, "timeline.csv"))))

def table(title, header, body):
    print("\n== " + title)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    for line in [header] + body:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())

# Processes
names = {"serve": "riffle serve", "w1": "ingest w1", "w2": "ingest w2", "w3": "ingest w3 (replacement)",
         "redis": "redis-server", "tansu": "tansu broker"}
body = []
for role, name in names.items():
    alive = [r for r in rows if r.get(role + "_rss_kb")]
    if not alive:
        body.append([name, "-", "-", "-", "-", "-", "-", "-", "-"]); continue
    rss = [int(r[role + "_rss_kb"]) / 1024 for r in alive]
    fds = [int(r[role + "_fds"]) for r in alive]
    order = [r[role + "_pid"] for r in alive]
    pids = sorted(set(order), key=order.index)
    # CPU: per pid, its last sample's CPU time over the time it was sampled alive.
    cpu_s = span = 0.0
    for pid in pids:
        mine = [r for r in alive if r[role + "_pid"] == pid]
        cpu_s += float(mine[-1][role + "_cpu_s"]) - float(mine[0][role + "_cpu_s"])
        span += int(mine[-1]["t_s"]) - int(mine[0]["t_s"])
    cpu = "%.0f%%" % (100 * cpu_s / span) if span else "-"
    body.append([name, ",".join(pids), len(alive), "%.1f" % rss[0], "%.1f" % max(rss), "%.1f" % rss[-1], min(fds), max(fds), fds[-1], cpu])
table("processes (RSS MB, open fds; sampled every %s s, %d samples)" % (
        (int(rows[1]["t_s"]) - int(rows[0]["t_s"])) if len(rows) > 1 else "?", len(rows)),
      ["process", "pid(s)", "samples", "RSS start", "RSS max", "RSS end", "fds min", "fds max", "fds end", "CPU avg"], body)

# Faults and recovery
table("fault timeline (t = seconds since traffic started)", ["t_s", "event", "detail"],
      [[t["t_s"], t["event"], t["detail"]] for t in timeline])
faults = [(int(t["t_s"]), t["event"]) for t in timeline if t["event"] in ("redis_shutdown", "worker_sigkill", "broker_stop")]
ends = [f[0] for f in faults[1:]] + [10**9]
def lag_s(r):
    return int(r["lag_ms"]) / 1000 if r.get("lag_ms") not in (None, "") else None
body = []
for (tf, name), tend in zip(faults, ends):
    window = [r for r in rows if tf <= int(r["t_s"]) < tend]
    bad = [r for r in window if str(r.get("lag_exit")) != "0"]
    lags = [lag_s(r) for r in window if lag_s(r) is not None]
    blags = [int(r["broker_lag_ms"]) / 1000 for r in window if r.get("broker_lag_ms")]
    worst = "%.1f / %.1f" % (max(lags) if lags else float("nan"), max(blags) if blags else float("nan"))
    if not bad:
        rec = "never above (every sample exit 0)"
    else:
        last_bad = max(int(r["t_s"]) for r in bad)
        after = [r for r in window if int(r["t_s"]) > last_bad and str(r.get("lag_exit")) == "0"]
        rec = ("%d s after the fault" % (int(after[0]["t_s"]) - tf)) if after else "not within this window"
    codes = Counter(str(r.get("lag_exit")) for r in window)
    body.append([name, tf, len(window), " ".join("%s:%d" % kv for kv in sorted(codes.items())), worst, rec])
table("recovery: `riffle lag --threshold %d s` after each fault (until the next one)" % (threshold_ms // 1000),
      ["fault", "at_s", "samples", "lag exit codes", "max lag s (watermark / broker)", "riffle lag passes again"], body)

# Serving errors
try:
    lt = json.load(open(os.path.join(work, "loadtest.json")))
    lat = lt["latency_ms"]
    table("serving (riffle loadtest, open loop, whole run)", ["sent", "ok", "errors", "achieved rps", "p50 ms", "p99 ms", "p99.9 ms", "max ms"],
          [[lt["sent"], lt["ok"], sum(lt["errors"].values()), "%.1f" % lt["achieved_rps"], lat["p50"], lat["p99"], lat.get("p999", lat.get("p99_9", "-")), lat["max"]]])
    print("  errors by kind: %s" % (json.dumps(lt["errors"]) if lt["errors"] else "none"))
    print("  error codes (server): %s" % (json.dumps(lt["error_codes"]) if lt["error_codes"] else "none"))
    print("  responses by degradation: %s" % json.dumps(lt["degradation"]))
    for g, by in lt["values"].items():
        print("  values of %s by status: %s" % (g, json.dumps(by)))
    print("  defaults that were not the registry's: %d; level violations: %d" % (lt["default_mismatches"], lt["level_violations"]))
except Exception as e:
    print("\n== serving: no loadtest report (%s); see loadtest.log" % e)
serve_bad = Counter(r["serve_health"] for r in rows if r.get("serve_health") not in ("200", ""))
print("  serve /health not 200 in %d of %d samples %s" % (sum(serve_bad.values()), len(rows), dict(serve_bad) or ""))
try:
    text = open(os.path.join(work, "serve-metrics-end.txt")).read()
    found = Counter()
    for line in text.splitlines():
        m = re.match(r'riffle_(store_errors|breaker_transitions|http_requests)_total\{([^}]*)\} (\S+)', line)
        if m and float(m.group(3)) > 0:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if m.group(1) == "store_errors":
                found["store errors %s/%s" % (labels.get("op"), labels.get("kind"))] += float(m.group(3))
            elif m.group(1) == "breaker_transitions":
                found["breaker %s->%s" % (labels.get("from"), labels.get("to"))] += float(m.group(3))
            elif labels.get("status_class") == "5xx":
                found["HTTP 5xx on %s" % labels.get("endpoint")] += float(m.group(3))
    print("  serve's /metrics at the end of traffic: %s" % (", ".join("%s: %d" % kv for kv in sorted(found.items())) or "no store errors, breaker never moved, no 5xx"))
except OSError:
    pass
prev, spans = None, []
for r in rows:
    if r.get("unavailable_values"):
        v = int(r["unavailable_values"])
        if prev is not None and v > prev:
            spans.append("%s:%d" % (r["t_s"], v - prev))
        prev = v
print("  unavailable values served, per sample interval (t_s:count): %s" % (" ".join(spans) or "none"))
opened = [r["t_s"] for r in rows if r.get("breaker_state") not in (None, "", "0")]
print("  breaker not closed at samples t_s: %s" % (" ".join(opened) or "never"))
slow = [r for r in rows if r.get("redis_slow_s") not in (None, "", "0")]
if slow:
    kinds = Counter(k for r in slow for k in r["redis_slow_events"].split())
    print("  Redis latency monitor (>= %s ms): %d seconds with a slow event in %d of %d samples, worst %s ms; events: %s" % (
        sys.argv[5], sum(int(r["redis_slow_s"]) for r in slow), len(slow), len(rows),
        max(int(r["redis_slow_max_ms"]) for r in slow), ", ".join("%s (%d samples)" % kv for kv in kinds.most_common())))
else:
    print("  Redis latency monitor (>= %s ms): no slow event" % sys.argv[5])

# Ingest stalls
body = []
for w in ["w1", "w2", "w3"]:
    alive = [r for r in rows if r.get(w + "_pid")]
    if not alive:
        continue
    bad = [r for r in alive if r.get(w + "_health") != "200"]
    reasons = Counter()
    for r in bad:
        for reason in (r.get(w + "_reasons") or "no answer").split(" | "):
            reasons[re.sub(r"\d+", "N", reason)] += 1
    body.append([w, len(alive), len(bad), "; ".join("%dx %s" % (n, k) for k, n in reasons.most_common()) or "-"])
table("ingest /health (samples while the worker was alive)", ["worker", "samples", "unhealthy", "why (numbers as N)"], body)
lags = [(lag_s(r), r["t_s"]) for r in rows if lag_s(r) is not None]
blags = [(int(r["broker_lag_ms"]) / 1000, r["t_s"]) for r in rows if r.get("broker_lag_ms")]
ends_known = sum(1 for r in rows if r.get("end_offset") not in (None, "", "0"))
behind = [(int(r["behind_msgs"]), r["t_s"]) for r in rows if r.get("behind_msgs")]
codes = Counter(str(r.get("lag_exit")) for r in rows)
print("  riffle lag exit codes: %s (0 ok, 3 above threshold / unowned, 1 store unreadable)" % " ".join("%s:%d" % kv for kv in sorted(codes.items())))
if lags: print("  largest watermark lag: %.1f s at t=%s s" % max(lags))
if blags: print("  largest broker lag (oldest uncommitted message): %.1f s at t=%s s" % max(blags))
print("  riffle lag knew the partitions' end offsets in %d of %d samples%s" % (ends_known, len(rows),
      "" if ends_known else " (no broker-side lag in messages or in time)"))
if behind: print("  largest backlog (producer's acknowledged end - committed): %d messages at t=%s s" % max(behind))
probs = Counter()
for r in rows:
    for p in (r.get("lag_problems") or "").split(" | "):
        if p: probs[re.sub(r"\d+", "N", p)] += 1
for p, n in probs.most_common(8):
    print("  %dx lag problem: %s" % (n, p))

# Dead letters
body = []
for w in ["w1", "w2", "w3", "oracle"]:
    path = os.path.join(work, w, "dead-letter-%s.ndjson" % sys.argv[4])
    reasons = Counter()
    if os.path.exists(path):
        for line in open(path):
            try: reasons[json.loads(line).get("reason", "?")] += 1
            except ValueError: reasons["unreadable line"] += 1
    body.append([w, sum(reasons.values()), ", ".join("%s: %d" % kv for kv in reasons.items()) or "-"])
table("dead letters (files in each worker's directory)", ["worker", "dead letters", "by reason"], body)
PY
python3 "$work/report.py" "$work" "$(python3 -c '
import re, sys
n, u = re.fullmatch(r"(\d+)(ms|s|m|h)", sys.argv[1]).groups()
print(int(n) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[u])' "$lag_threshold")" "$kill_worker" "$source_name" "$redis_slow_ms" \
  | tee "$work/report.txt"

echo
echo "== oracle: the topic replayed into a fresh store, served by a second riffle serve --no-cache"
{
  echo "  producer:  $produced"
  echo "  topic:     $dumped"
  echo "  committed: ${state#* } (partition:committed/end)"
  sed 's/^/  /' "$work/compare.out"
  compare_line=$(head -1 "$work/compare.out")
  mism=$(field "$compare_line" mismatches)
  errs=$(field "$compare_line" errors)
  if [ -n "$mism" ] && [ "$mism" = 0 ] && [ "$errs" = 0 ] && [ "$(field "$compare_line" compared)" -gt 0 ] && [ "$caught" = 1 ]; then
    echo "  values equal the oracle: yes"
  else
    echo "  values equal the oracle: no"
  fi
} | tee -a "$work/report.txt"
echo
echo "samples: $work/samples.csv   timeline: $work/timeline.csv   report: $work/report.txt"
