#!/usr/bin/env bash
# Ingest benchmark: prints events/s for `riffle ingest` with the fraud example's
# aggregations, beside baselines measured in the same run on the same machine, and the time
# from an event produced to its effect served. Not a test: it asserts nothing, it reports.
#
#   bench/ingest.sh [--events N] [--users N] [--rate EV_PER_S] [--seconds S] [--partitions P]
#   RIFFLE_BIN=path/to/riffle bench/ingest.sh ...   (measure another build of riffle)
#
# Needs: redis-server, redis-cli, curl, tansu (scripts/test.sh installs it).
# Scenarios (one ingest process each, release build, loopback):
#   ndjson→redis     riffle ingest --from FILE into Redis (a backfill): events/s
#   ndjson→embedded  the same into the embedded store
#   kafka bare       a bare rdkafka consumer draining the topic (the broker's ceiling), with
#                    riffle's fetch wait (20 ms) and with librdkafka's default (500 ms): tansu
#                    holds every fetch for the whole wait, so the default caps the drain
#   kafka→redis      riffle ingest from the same topic into Redis: events/s between its
#                    first and last offset commit (commits follow durable flushes)
#   event→served     events produced at --rate into Kafka while riffle ingest and riffle
#                    serve (--no-cache) run on one Redis; probe events for new users are
#                    timed from being handed to the producer to their row being served
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
users=100000
rate=50000
seconds=20
partitions=4
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export PATH="$HOME/.cargo/bin:$PATH"
for tool in redis-server redis-cli curl tansu python3; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (scripts/test.sh installs the tools)" >&2; exit 1; }
done

echo "==> building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle --example ingest_bench
# RIFFLE_BIN: another riffle binary to measure (e.g. an older build, to compare builds in
# alternating runs); the default is the one just built.
bin=${RIFFLE_BIN:-target/release/riffle}
tool=target/release/examples/ingest_bench

work=$(mktemp -d)
pids=()
# Redis servers are started inside $(...) (start_redis prints the port), where pids+= is lost:
# their pids go to a file instead.
cleanup() {
  for p in "${pids[@]}" $(cat "$work/redis.pids" 2> /dev/null); do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fsS "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
field() { tr ' ' '\n' <<< "$1" | sed -n "s/^$2=//p"; }
# events/s from `riffle ingest --json`'s summary (events read over the run's elapsed time);
# on stderr the dead-lettered count and the rows written, so a workload that mostly measures
# the dead-letter path (events past the allowed lateness) shows itself.
summary_rate() {
  python3 -c '
import json, sys
s = json.load(sys.stdin)
print("    dead-lettered %d, entities written %d in %d flushes" % (s["dead_lettered_total"], s["entities_written"], s["flushes"]), file=sys.stderr)
loop = sorted(s["loop_ms"].items(), key=lambda kv: -kv[1])
total = max(sum(v for _, v in loop), 1)
print("    loop time: " + ", ".join("%s %.0f%%" % (k.replace("_", " "), 100 * v / total) for k, v in loop if v), file=sys.stderr)
print("%.0f" % (s["events_read"] / max(s["elapsed_ms"] / 1000, 1e-9)))'
}

start_redis() {
  local port
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis-$port.log" 2>&1 &
  echo $! >> "$work/redis.pids"
  for _ in $(seq 1 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
  echo "$port"
}

# The fraud example, with ingest's listener on a free port so runs never collide.
config=$work/riffle.toml
sed "s|^listen = \"127.0.0.1:6567\"|listen = \"127.0.0.1:$(free_port)\"|" examples/fraud/riffle.toml > "$config"
source_name=$(python3 -c 'import tomllib,sys; r=tomllib.load(open(sys.argv[1],"rb")); print(r["sources"][0]["name"])' "$config")
stream_group=$(python3 -c '
import tomllib, sys
r = tomllib.load(open(sys.argv[1], "rb"))
print(next(g["name"] for g in r["feature_groups"] if g.get("source") == sys.argv[2]))' "$config" "$source_name")
entity=$(python3 -c 'import tomllib,sys; r=tomllib.load(open(sys.argv[1],"rb")); print(r["sources"][0]["entity"])' "$config")
naggs=$(python3 -c '
import tomllib, sys
r = tomllib.load(open(sys.argv[1], "rb"))
print(sum(1 for g in r["feature_groups"] if g.get("source") == sys.argv[2] for f in g["features"] if "aggregation" in f))' "$config" "$source_name")

echo "==> generating $events events over $users users (source $source_name, $naggs aggregations)"
"$tool" gen --config "$config" --source "$source_name" --events "$events" --users "$users" --out "$work/events.ndjson" > /dev/null

echo "==> ndjson → redis"
redis_port=$(start_redis)
ndjson_redis=$("$bin" ingest --config "$config" --source "$source_name" --store "redis://127.0.0.1:$redis_port" \
  --from "$work/events.ndjson" --json 2> /dev/null | summary_rate)
keys=$(redis-cli -p "$redis_port" dbsize)
echo "    $ndjson_redis events/s ($keys keys)"

echo "==> ndjson → embedded"
ndjson_embedded=$("$bin" ingest --config "$config" --source "$source_name" --store "embedded:$work/embedded" \
  --from "$work/events.ndjson" --json 2> /dev/null | summary_rate)
echo "    $ndjson_embedded events/s"

echo "==> kafka: tansu broker, $partitions partitions"
kafka_port=$(free_port)
brokers="127.0.0.1:$kafka_port"
(cd "$work" && exec tansu broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1) &
pids+=($!)
for _ in $(seq 1 200); do (exec 3<> "/dev/tcp/127.0.0.1/$kafka_port") 2> /dev/null && break; sleep 0.05; done
for topic in bench live; do
  for _ in $(seq 1 20); do
    tansu topic create --broker "tcp://$brokers" --partitions "$partitions" "$topic" > /dev/null 2>&1 && break
    sleep 0.1
  done
done
produced=$("$tool" produce --config "$config" --source "$source_name" --brokers "$brokers" --topic bench --file "$work/events.ndjson")
echo "    $produced"

echo "==> kafka bare consumer (riffle's fetch wait, then librdkafka's default 500 ms)"
bare=$("$tool" drain --brokers "$brokers" --topic bench --expect "$events")
echo "    $bare"
bare_default=$("$tool" drain --brokers "$brokers" --topic bench --expect "$events" --fetch-wait-ms 500)
echo "    $bare_default"

echo "==> kafka → redis"
redis_port2=$(start_redis)
"$bin" ingest --config "$config" --source "$source_name" --store "redis://127.0.0.1:$redis_port2" \
  --brokers "$brokers" --topic bench --group-id riffle-bench > "$work/ingest-kafka.log" 2>&1 &
ingest_pid=$!
pids+=($ingest_pid)
kafka_redis=$("$tool" wait-group --brokers "$brokers" --topic bench --group riffle-bench)
kill -TERM "$ingest_pid" 2> /dev/null || true
wait "$ingest_pid" 2> /dev/null || true
echo "    $kafka_redis"
# The run's own account (printed when it stops): what limited it.
sed -n 's/^  loop time  */    loop time: /p' "$work/ingest-kafka.log"

echo "==> event → served at $rate events/s for ${seconds}s"
redis_port3=$(start_redis)
serve_port=$(free_port)
"$bin" ingest --config "$config" --source "$source_name" --store "redis://127.0.0.1:$redis_port3" \
  --brokers "$brokers" --topic live --group-id riffle-live > "$work/ingest-live.log" 2>&1 &
pids+=($!)
"$bin" serve --config "$config" --store "redis://127.0.0.1:$redis_port3" --listen "127.0.0.1:$serve_port" --no-cache \
  > "$work/serve.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$serve_port/health"
sleep 3 # the ingest worker joins its group
live=$("$tool" latency --config "$config" --source "$source_name" --brokers "$brokers" --topic live \
  --serve "http://127.0.0.1:$serve_port" --entity "$entity" --group-name "$stream_group" \
  --rate "$rate" --seconds "$seconds" --users "$users")
echo "    $live"

ratio() { python3 -c "import sys; a,b=float(sys.argv[1] or 'nan'),float(sys.argv[2] or 'nan'); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
bare_rate=$(field "$bare" drain_rate)
bare_default_rate=$(field "$bare_default" drain_rate)
kafka_rate=$(field "$kafka_redis" ingest_rate)
echo
echo "== ingest, one process, fraud example ($naggs aggregations), $events events over $users users"
printf '%-34s %14s %10s\n' scenario "events/s" ratio
printf '%-34s %14s %10s\n' "ndjson → redis (target ≥ 250000)" "$ndjson_redis" "$(ratio "$ndjson_redis" 250000)"
printf '%-34s %14s %10s\n' "ndjson → embedded" "$ndjson_embedded" ""
printf '%-34s %14s %10s\n' "kafka bare consumer (baseline)" "$bare_rate" "1.00"
printf '%-34s %14s %10s\n' "  same, fetch wait 500 ms" "$bare_default_rate" "$(ratio "$bare_default_rate" "$bare_rate")"
printf '%-34s %14s %10s\n' "kafka → redis (target ≥ 0.8×)" "$kafka_rate" "$(ratio "$kafka_rate" "$bare_rate")"
echo "kafka → redis: $(ratio "$kafka_rate" "$bare_default_rate")× the bare consumer at fetch wait 500 ms," \
  "$(ratio "$kafka_rate" "$ndjson_redis")× ndjson → redis (the same pipeline fed from a file)"
echo
echo "== event → served, $rate events/s offered for ${seconds}s (target p99 ≤ 250 ms)"
printf '%-16s %8s %8s %8s %8s\n' "produced ev/s" probes p50_ms p99_ms max_ms
printf '%-16s %8s %8s %8s %8s\n' "$(field "$live" produce_rate)" "$(field "$live" probes)" \
  "$(field "$live" p50_ms)" "$(field "$live" p99_ms)" "$(field "$live" max_ms)"
