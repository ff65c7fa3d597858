#!/usr/bin/env bash
# Serving benchmark: prints requests/s and p50/p99 for Riffle's read paths, beside
# baselines measured in the same run on the same machine, so the figures are ratios that
# survive a noisy 2-core box. Not a test: it asserts nothing, it reports.
#
#   bench/serve.sh [--users N] [--duration 10s] [--connections 32]
#   RIFFLE_BIN=path/to/riffle bench/serve.sh ...   (measure another build of riffle)
#
# Needs: wrk, redis-server, redis-benchmark (Debian: wrk, redis-server, redis-tools).
# Scenarios (wrk, 2 threads, loopback; entity ids drawn so the top 1% get 20% of requests):
#   minimal   a minimal axum handler returning a fixed 300-byte body (the ceiling)
#   redis     riffle serve --no-cache, single-entity lookups, every read goes to Redis
#   cached    riffle serve with its hot cache, single-entity lookups of the warmed hot set
#   batch100  riffle serve --no-cache, 100 entities per request (1 and 32 connections)
#   cluster   the redis path and batch100 again on a 3-master Redis Cluster started here
#   redis-benchmark HGETALL over the same key space (-c 50, and -P 16): the store's floor
set -euo pipefail
cd "$(dirname "$0")/.."

users=100000
duration=10s
conns=32
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in wrk redis-server redis-benchmark curl; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (apt-get install wrk redis-server redis-tools curl)" >&2; exit 1; }
done

echo "==> building release binaries"
cargo build -q --release -p riffle
cargo build -q --release -p riffle-serve --example minimal_http
# RIFFLE_BIN: another riffle binary to measure (e.g. an older build, to compare builds in
# alternating runs); the default is the one just built.
bin=${RIFFLE_BIN:-target/release/riffle}
minimal=target/release/examples/minimal_http

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A cluster node also listens on its port + 10000 (the cluster bus), so its port is at most
# 55535 and both must be free.
free_cluster_port() {
  python3 -c '
import random, socket
while True:
    port = random.randint(20000, 55535)
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
    except OSError:
        continue
    print(port)
    break'
}
wait_http() { for _ in $(seq 1 200); do curl -fsS "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping > /dev/null 2>&1 && break; sleep 0.05; done
store="redis://127.0.0.1:$redis_port"
config=examples/fraud/riffle.toml

echo "==> loading $users users into Redis (every group of the fraud example)"
gen() { awk -v n="$users" -v seed="$1" "BEGIN { srand(seed); $2 }" > "$3"; }
gen 1 'print "user_id,tx_count_1h,tx_sum_1h,tx_amount_mean_1h,tx_amount_max_1h,distinct_merchants_24h"; for (i = 0; i < n; i++) printf "u%d,%d,%.2f,%.2f,%.2f,%d\n", i, int(rand()*20), rand()*500, rand()*50, rand()*200, int(rand()*10)' "$work/velocity.csv"
gen 2 'print "user_id,last_login_ts,session_tx_count_30m,session_amount_sum_30m,session_countries_30m,session_devices_30m"; for (i = 0; i < n; i++) printf "u%d,%d,%d,%.2f,%d,%d\n", i, 1795700000000 + int(rand()*1000000), int(rand()*5), rand()*300, 1 + int(rand()*2), 1 + int(rand()*2)' "$work/session.csv"
gen 3 'print "user_id,tx_count_24h,tx_sum_24h,avg_tx_90d,distinct_merchants_7d"; for (i = 0; i < n; i++) printf "u%d,%d,%.2f,%.2f,%d\n", i, int(rand()*100), rand()*3000, rand()*80, int(rand()*30)' "$work/historical.csv"
gen 4 'print "user_id,user_embedding"; for (i = 0; i < n; i++) { printf "u%d,", i; for (j = 0; j < 8; j++) printf "%s%.4f", (j ? ";" : ""), rand()*2-1; print "" }' "$work/embeddings.csv"
gen 5 'print "user_id,account_age_days,credit_score_bucket,is_premium"; for (i = 0; i < n; i++) printf "u%d,%d,%d,%s\n", i, int(rand()*3650), int(rand()*10), (rand() < 0.2 ? "true" : "false")' "$work/profile.csv"
for g in velocity session historical embeddings profile; do
  "$bin" load --config "$config" --store "$store" --group "user_$g" "$work/$g.csv" > "$work/load-$g.log" 2>&1 \
    || { cat "$work/load-$g.log"; exit 1; }
done
echo "    $(redis-cli -p "$redis_port" dbsize) keys, $(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r') used"

start_riffle() { # name port extra-args...
  local name=$1 port=$2; shift 2
  RUST_LOG=warn "$bin" serve --config "$config" --store "$store" --listen "127.0.0.1:$port" "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/health"
}
minimal_port=$(free_port); "$minimal" "127.0.0.1:$minimal_port" > /dev/null 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$minimal_port/x"
nocache_port=$(free_port); start_riffle nocache "$nocache_port" --no-cache
cached_port=$(free_port); start_riffle cached "$cached_port"

# What the fraud model reads: the lesson's ten features (service fraud_v1), in four groups.
groups=user_velocity,user_historical,user_profile,user_session
features='"user_velocity:tx_count_1h","user_velocity:tx_sum_1h","user_historical:tx_count_24h","user_historical:tx_sum_24h","user_historical:avg_tx_90d","user_historical:distinct_merchants_7d","user_profile:account_age_days","user_profile:credit_score_bucket","user_profile:is_premium","user_session:last_login_ts"'
cat > "$work/single.lua" <<LUA
local n = $users
local groups = "$groups"
local top = math.max(1, math.floor(n / 100))
request = function()
  local id
  if math.random() < 0.2 then id = math.random(0, top - 1) else id = math.random(top, n - 1) end
  return wrk.format("GET", "/v1/features/user/u" .. id .. "?groups=" .. groups)
end
LUA
# The hot-cache path: the hot set only (the top 1% of users, who get 20% of real traffic),
# warmed first, so the scenario measures lookups answered from the in-process cache.
cat > "$work/hot.lua" <<LUA
local top = math.max(1, math.floor($users / 100))
local groups = "$groups"
request = function()
  return wrk.format("GET", "/v1/features/user/u" .. math.random(0, top - 1) .. "?groups=" .. groups)
end
LUA
cat > "$work/batch.lua" <<LUA
local n = $users
local top = math.max(1, math.floor(n / 100))
local bodies = {}
for b = 1, 500 do
  local ids = {}
  for i = 1, 100 do
    local id
    if math.random() < 0.2 then id = math.random(0, top - 1) else id = math.random(top, n - 1) end
    ids[i] = '"u' .. id .. '"'
  end
  bodies[b] = '{"entity":"user","features":[$features],"ids":[' .. table.concat(ids, ",") .. ']}'
end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/features", {["Content-Type"] = "application/json"}, bodies[i])
end
LUA

# Runs wrk and prints "rps p50_ms p99_ms non2xx".
measure() { # url script connections
  local out
  local threads=2
  [ "$3" -lt 2 ] && threads=1
  out=$(wrk -t"$threads" -c"$3" -d"$duration" --latency ${2:+-s "$2"} "$1")
  echo "$out" > "$work/last-wrk.txt"
  echo "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad + 0 }'
}

echo "==> measuring ($duration per scenario, wrk -t2 -c$conns)"
printf '%-34s %12s %10s %10s %8s %10s\n' scenario "req/s" "p50 ms" "p99 ms" errors "vs minimal"
row() { # label "rps p50 p99 bad" [entities-per-request]
  local label=$1 rps p50 p99 bad
  read -r rps p50 p99 bad <<< "$2"
  local ratio; ratio=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
  printf '%-34s %12s %10s %10s %8s %10s\n' "$label" "$rps" "$p50" "$p99" "$bad" "$ratio"
}
base=$(measure "http://127.0.0.1:$minimal_port/v1/features/user/u1" "" "$conns"); base_rps=${base%% *}
row "minimal axum handler (300 B)" "$base"
single=$(measure "http://127.0.0.1:$nocache_port" "$work/single.lua" "$conns")
row "riffle redis path (--no-cache)" "$single"
wrk -t1 -c4 -d2s -s "$work/hot.lua" "http://127.0.0.1:$cached_port" > /dev/null   # warm the cache
row "riffle hot-cache path (hot set)" "$(measure "http://127.0.0.1:$cached_port" "$work/hot.lua" "$conns")"
hit_rate=$(curl -s "http://127.0.0.1:$cached_port/health" | grep -o '"hit_rate":[0-9.]*' | cut -d: -f2)
echo "    hot-cache hit rate over the run: $hit_rate"
b32=$(measure "http://127.0.0.1:$nocache_port" "$work/batch.lua" "$conns")
row "riffle batch of 100, -c$conns" "$b32"
b1=$(measure "http://127.0.0.1:$nocache_port" "$work/batch.lua" 1)
row "riffle batch of 100, -c1" "$b1"
echo "    batch entities/s: -c$conns $(( ${b32%% *} * 100 )), -c1 $(( ${b1%% *} * 100 ))"

echo "==> the same on a 3-master Redis Cluster (riffle serve --no-cache --store redis-cluster://…)"
cluster_ports=()
for _ in 1 2 3; do
  p=$(free_cluster_port); mkdir -p "$work/c$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$work/c$p/nodes.conf" \
    --cluster-node-timeout 2000 --save "" --appendonly no --dir "$work/c$p" > "$work/c$p/log" 2>&1 &
  pids+=($!); cluster_ports+=("$p")
  # Up before the next port is drawn, so two nodes never draw the same free port.
  for _ in $(seq 1 100); do redis-cli -p "$p" ping > /dev/null 2>&1 && break; sleep 0.05; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas 0 --cluster-yes \
  > "$work/cluster-create.log" 2>&1 || { cat "$work/cluster-create.log"; for p in "${cluster_ports[@]}"; do tail -5 "$work/c$p/log"; done; exit 1; }
for p in "${cluster_ports[@]}"; do
  for _ in $(seq 1 200); do redis-cli -p "$p" cluster info 2> /dev/null | grep -q cluster_state:ok && break; sleep 0.05; done
done
cluster_store="redis-cluster://$(printf '127.0.0.1:%s,' "${cluster_ports[@]}" | sed 's/,$//')"
for g in velocity session historical embeddings profile; do
  "$bin" load --config "$config" --store "$cluster_store" --group "user_$g" "$work/$g.csv" > "$work/cload-$g.log" 2>&1 \
    || { cat "$work/cload-$g.log"; exit 1; }
done
echo "    keys per master: $(for p in "${cluster_ports[@]}"; do printf '%s ' "$(redis-cli -p "$p" dbsize)"; done)"
cluster_port=$(free_port)
RUST_LOG=warn "$bin" serve --config "$config" --store "$cluster_store" --listen "127.0.0.1:$cluster_port" --no-cache \
  > "$work/cluster.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$cluster_port/health"
c1=$(measure "http://127.0.0.1:$cluster_port" "$work/single.lua" "$conns")
row "cluster redis path (--no-cache)" "$c1"
cb=$(measure "http://127.0.0.1:$cluster_port" "$work/batch.lua" "$conns")
row "cluster batch of 100, -c$conns" "$cb"
echo "    cluster single lookups vs standalone: $(awk -v a="${c1%% *}" -v b="${single%% *}" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')" \
  "(target >= 0.8x); cluster batch entities/s: $(( ${cb%% *} * 100 ))"

echo "==> redis-benchmark HGETALL over the same key space (the store's floor)"
# redis-benchmark's __rand_int__ is 12 zero-padded digits: give it its own keys of that shape.
redis-cli -p "$redis_port" eval "for i=0,$users-1 do redis.call('HSET', string.format('bench:%012d', i), 'user_velocity@1', 'xxxxxxxxxxxxxxxxxxxx') end" 0 > /dev/null
for p in 1 16; do
  rps=$(redis-benchmark -p "$redis_port" -c 50 -n 300000 -r "$users" -P "$p" -q HGETALL 'bench:__rand_int__' \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
  printf '%-34s %12s\n' "redis-benchmark HGETALL -c50 -P$p" "$rps"
done
