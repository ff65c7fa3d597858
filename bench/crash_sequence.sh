#!/usr/bin/env bash
# The issue's crash sequence, run again and again, with Riffle workers and with bare
# librdkafka consumers side by side on the same broker (tansu): how often does a group end
# the sequence with partitions owned by nobody, and does it recover? Not a test: it reports.
#
#   bench/crash_sequence.sh [--runs N] [--members all|bare|riffle|riffle0] [--observe SECONDS]
#
# Needs: redis-server, redis-cli, tansu, python3 (scripts/test.sh installs the tools).
#
# Members: `bare` (`crash_bench member` processes: range/roundrobin, 10 s session, 1 s
# heartbeat, committing every 500 ms), `riffle0` (riffle ingest workers into one Redis, with
# the remedy off: `ingest.rejoin_after = "0s"`, so the group is left as the broker leaves
# it, to compare with bare consumers) and `riffle` (the same with the default remedy: a
# worker rejoins once partitions have been unowned for 15 s by its view).
#
# One run: a fresh broker and 4-partition topic; two members of one group; 30,000 events
# produced over 20 s; four times, 2.5-4.5 s apart, alternating, one member SIGKILLed and a
# replacement started. Then, for --observe seconds (default 90), every 2 s: the group's
# committed offsets against the partitions' ends, and each live member's latest assignment
# from its log.
#
# Per run it prints: partitions owned by no live member 15 s after the last kill (past the
# 10 s session timeout), how many remedies Riffle workers took, and when the committed
# offsets reached every end (counted from the last kill).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
members=all
observe=90
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --members) members=$2; shift 2 ;;
    --observe) observe=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export PATH="$HOME/.cargo/bin:$PATH"
for tool in redis-server redis-cli tansu python3; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (scripts/test.sh installs the tools)" >&2; exit 1; }
done

echo "==> building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle --example crash_bench --example ingest_bench
bin=target/release/riffle
tool=target/release/examples/crash_bench

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap 'cleanup; echo "logs kept in $work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { tr ' ' '\n' <<< "$1" | sed -n "s/^$2=//p"; }

config=$work/riffle.toml
cp examples/fraud/riffle.toml "$config"
# The remedy off, to see the group as the broker leaves it.
config0=$work/riffle-norejoin.toml
python3 - "$config" "$config0" << 'EOF'
import sys
text = open(sys.argv[1]).read()
if "\n[ingest]\n" in text:
    text = text.replace("\n[ingest]\n", "\n[ingest]\nrejoin_after = \"0s\"\n", 1)
else:
    text = text.replace("\n[[entities]]", "\n[ingest]\nrejoin_after = \"0s\"\n\n[[entities]]", 1)
open(sys.argv[2], "w").write(text)
EOF
echo "==> generating 30000 events"
target/release/examples/ingest_bench gen --config "$config" --source transactions --events 30000 \
  --users 2000 --out "$work/events.ndjson" > /dev/null

# The latest assignment a member logged: riffle's `kafka partitions assigned partitions=[0, 1]`
# or crash_bench's `assigned=0,1`; printed as `0,1` (empty: none).
latest_assignment() {
  python3 - "$1" << 'EOF'
import re, sys
last = None
try:
    lines = open(sys.argv[1], errors="replace").readlines()
except FileNotFoundError:
    lines = []
for line in lines:
    m = re.search(r"kafka partitions assigned.*partitions=\[([0-9, ]*)\]", line)
    if m:
        last = m.group(1)
        continue
    m = re.match(r"assigned=([0-9,]*)$", line.strip())
    if m:
        last = m.group(1)
print(",".join(p.strip() for p in (last or "").split(",") if p.strip()))
EOF
}

# Partitions (of 0..3) in no live member's latest assignment, as `0,2` (empty: none).
unowned() {
  local owned="" log
  for log in "$@"; do owned="$owned,$(latest_assignment "$log")"; done
  python3 -c '
import sys
owned = {p for p in sys.argv[1].split(",") if p}
print(",".join(str(p) for p in range(4) if str(p) not in owned))' "$owned"
}

run_once() {
  local kind=$1 n=$2 dir port brokers group redis_port i victim t0 state end committed
  dir=$work/$kind-$n
  mkdir -p "$dir"
  port=$(free_port)
  brokers="127.0.0.1:$port"
  group="crash-$kind-$n"
  (cd "$dir" && exec tansu broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
    --storage-engine memory://tansu/ > "$dir/tansu.log" 2>&1) &
  pids+=($!)
  local broker_pid=$!
  for _ in $(seq 1 200); do (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.05; done
  for _ in $(seq 1 20); do tansu topic create --broker "tcp://$brokers" --partitions 4 transactions > /dev/null 2>&1 && break; sleep 0.1; done
  if [ "$kind" != bare ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" > "$dir/redis.log" 2>&1 &
    pids+=($!)
    local redis_pid=$!
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping > /dev/null 2>&1 && break; sleep 0.05; done
  fi
  # start_member NAME: starts one member, its log in $dir/NAME.log, its pid in member_pid.
  start_member() {
    if [ "$kind" != bare ]; then
      local cfg=$config
      [ "$kind" = riffle0 ] && cfg=$config0
      NO_COLOR=1 RUST_LOG=warn,riffle_ingest::feed::kafka::source=info,riffle_ingest::pipeline=warn \
        "$bin" ingest --config "$cfg" --store "redis://127.0.0.1:$redis_port" \
        --brokers "$brokers" --topic transactions --group-id "$group" --listen "127.0.0.1:$(free_port)" \
        > "$dir/$1.log" 2>&1 &
    else
      "$tool" member --brokers "$brokers" --topic transactions --group "$group" > "$dir/$1.log" 2>&1 &
    fi
    member_pid=$!
    pids+=($member_pid)
  }
  local names=(a0 b0) live_pids=() logs=()
  start_member a0; live_pids[0]=$member_pid
  start_member b0; live_pids[1]=$member_pid
  for _ in $(seq 1 300); do
    [ -n "$(latest_assignment "$dir/a0.log")" ] && [ -n "$(latest_assignment "$dir/b0.log")" ] && break
    sleep 0.1
  done
  "$tool" produce --brokers "$brokers" --topic transactions --file "$work/events.ndjson" --seconds 20 > "$dir/produce.log" 2>&1 &
  local producer=$!
  pids+=($producer)
  for i in 0 1 2 3; do
    sleep "$(python3 -c 'import random; print(round(random.uniform(2.5, 4.5), 2))')"
    victim=$((i % 2))
    kill -9 "${live_pids[$victim]}" 2> /dev/null || true
    wait "${live_pids[$victim]}" 2> /dev/null || true
    names[$victim]="$([ $victim = 0 ] && echo a || echo b)$((i / 2 + 1))"
    start_member "${names[$victim]}"
    live_pids[$victim]=$member_pid
  done
  t0=$(date +%s.%N)
  logs=("$dir/${names[0]}.log" "$dir/${names[1]}.log")
  local at15="" exact_after="never" now elapsed
  while :; do
    now=$(date +%s.%N)
    elapsed=$(python3 -c "print(round($now - $t0, 1))")
    if [ -z "$at15" ] && python3 -c "import sys; sys.exit(0 if $elapsed >= 15 else 1)"; then
      at15=$(unowned "${logs[@]}")
      [ -z "$at15" ] && at15="none"
    fi
    state=$("$tool" state --brokers "$brokers" --topic transactions --group "$group" 2> /dev/null || true)
    end=$(field "$state" end)
    committed=$(field "$state" committed)
    if [ -n "$end" ] && [ "$end" = "$committed" ] && [ -n "$at15" ] && grep -q "^produced=" "$dir/produce.log"; then
      exact_after=$elapsed
      break
    fi
    python3 -c "import sys; sys.exit(0 if $elapsed >= $observe else 1)" && break
    sleep 2
  done
  local rejoins=0
  if [ "$kind" != bare ]; then
    rejoins=$(cat "$dir"/*.log | grep -c "partitions owned by no member" || true)
  fi
  printf '%-7s %4s %-22s %8s %16s   %s\n' "$kind" "$n" "$at15" "$rejoins" "$exact_after" \
    "end $end committed $committed"
  echo "$kind $n $at15 $rejoins $exact_after" >> "$work/results.txt"
  for p in "${live_pids[@]}" "$broker_pid" ${redis_pid:+$redis_pid}; do
    kill -9 "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
}

kinds=()
case "$members" in
  all) kinds=(bare riffle0 riffle) ;;
  riffle|riffle0|bare) kinds=("$members") ;;
  *) echo "--members all|bare|riffle|riffle0" >&2; exit 2 ;;
esac
echo
printf '%-7s %4s %-22s %8s %16s\n' members run "unowned at +15 s" remedies "exact after (s)"
for n in $(seq 1 "$runs"); do
  for kind in "${kinds[@]}"; do
    run_once "$kind" "$n"
  done
done

echo
echo "== summary over $runs run(s) each (observed ${observe}s after the last kill)"
printf '%-7s %6s %24s %16s %22s\n' members runs "unowned at +15 s" "exact in time" "median time to exact"
for kind in "${kinds[@]}"; do
  python3 - "$work/results.txt" "$kind" << 'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]]
stuck = sum(1 for r in rows if r[2] != "none")
exact = [float(r[4]) for r in rows if r[4] != "never"]
median = "%.1f s" % statistics.median(exact) if exact else "-"
print("%-7s %6d %24s %16s %22s" % (sys.argv[2], len(rows), "%d of %d" % (stuck, len(rows)),
      "%d of %d" % (len(exact), len(rows)), median))
EOF
done
