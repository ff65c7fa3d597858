#!/usr/bin/env bash
# Auth benchmark: what checking a bearer token costs the Redis read path. Two `riffle serve
# --no-cache` over one Redis, the fraud example's registry as is (open) and the same with
# principals (the caller's token looked up by its SHA-256, its scope checked against every
# group read), measured by wrk alternately (open, auth, auth, open, …) in one run. Two
# figures: requests/s and the server's own CPU time per request (user + system, from /proc),
# the median run of each. Both move by more than the cost itself on a shared 2-core machine
# (wrk and Redis share the cores), so the gate's own work per request is also timed
# directly (riffle-auth's example gate_cost: authenticate, the caller into the request's
# extensions, the read checked; the same on the open registry as the baseline) and given as
# a share of the open server's CPU per request. Target: auth costs at most 5%. Not a test:
# it asserts nothing, it reports.
#
#   bench/auth.sh [--users N] [--duration 10s] [--connections 32] [--rounds 5]
#   RIFFLE_BIN=path/to/riffle bench/auth.sh ...   (measure another build of riffle)
#
# Needs: wrk, redis-server, redis-cli, curl, python3 (Debian: wrk redis-server redis-tools curl).
set -euo pipefail
cd "$(dirname "$0")/.."

users=100000
duration=10s
conns=32
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in wrk redis-server redis-cli curl python3; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool (apt-get install wrk redis-server redis-tools curl python3)" >&2; exit 1; }
done

if [ -z "${RIFFLE_BIN:-}" ]; then
  echo "==> building the release binary"
  cargo build -q --release -p riffle
fi
bin=${RIFFLE_BIN:-target/release/riffle}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fsS "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping > /dev/null 2>&1 && break; sleep 0.05; done
store="redis://127.0.0.1:$redis_port"
open_config=examples/fraud/riffle.toml

echo "==> loading $users users (user_velocity and user_profile)"
awk -v n="$users" 'BEGIN { srand(1); print "user_id,tx_count_1h,tx_sum_1h,tx_amount_mean_1h,tx_amount_max_1h,distinct_merchants_24h"; for (i = 0; i < n; i++) printf "u%d,%d,%.2f,%.2f,%.2f,%d\n", i, int(rand()*20), rand()*500, rand()*50, rand()*200, int(rand()*10) }' > "$work/velocity.csv"
awk -v n="$users" 'BEGIN { srand(2); print "user_id,account_age_days,credit_score_bucket,is_premium"; for (i = 0; i < n; i++) printf "u%d,%d,%d,%s\n", i, int(rand()*3650), int(rand()*10), (rand() < 0.2 ? "true" : "false") }' > "$work/profile.csv"
for g in velocity profile; do
  "$bin" load --config "$open_config" --store "$store" --group "user_$g" "$work/$g.csv" > "$work/load-$g.log" 2>&1 \
    || { cat "$work/load-$g.log"; exit 1; }
done

# The same registry with principals: the reader's token and a few others beside it.
made=$("$bin" token new fraud-model --scope read:service:fraud_v1 --config "$open_config" 2> "$work/token.txt")
token=$(grep '^rfl_' "$work/token.txt")
{
  cat "$open_config"
  echo
  echo "$made"
  for name in loader gateway oncall; do
    echo
    "$bin" token new "$name" --scope read --config "$open_config" 2> /dev/null
  done
} > "$work/auth.toml"

start_riffle() { # name port config
  RUST_LOG=warn "$bin" serve --config "$3" --store "$store" --listen "127.0.0.1:$2" --no-cache > "$work/$1.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$2/health"
}
open_port=$(free_port); start_riffle open "$open_port" "$open_config"; open_pid=${pids[-1]}
auth_port=$(free_port); start_riffle auth "$auth_port" "$work/auth.toml"; auth_pid=${pids[-1]}
# A process's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_s=$(getconf CLK_TCK)

script() { # file token
  cat > "$1" <<LUA
local n = $users
local top = math.max(1, math.floor(n / 100))
local token = "$2"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
request = function()
  local id
  if math.random() < 0.2 then id = math.random(0, top - 1) else id = math.random(top, n - 1) end
  return wrk.format("GET", "/v1/features/user/u" .. id .. "?groups=user_velocity,user_profile")
end
LUA
}
script "$work/open.lua" ""
script "$work/auth.lua" "$token"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$auth_port/v1/features/user/u1?groups=user_velocity,user_profile")
nocode=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$auth_port/v1/features/user/u1?groups=user_velocity,user_profile")
echo "    the guarded server answers $code with the token, $nocode without"

measure() { # port script -> "rps p99_ms non2xx requests"
  wrk -t2 -c"$conns" -d"$duration" --latency -s "$2" "http://127.0.0.1:$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 } /^ +99%/ { p99 = ms($2) } /Non-2xx/ { bad = $NF } / requests in / { n = $1 }
    END { printf "%.0f %.3f %d %d\n", rps, p99, bad + 0, n }'
}
echo "==> measuring, alternately ($rounds rounds of $duration each, wrk -t2 -c$conns, Redis path: every read goes to Redis)"
printf '%-24s %12s %10s %8s %14s\n' run "req/s" "p99 ms" non-2xx "CPU µs/req"
declare -A rates=() cpus=()
for round in $(seq 1 "$rounds"); do
  # Each goes first every other round, so whatever favours the first (or second) run of a
  # round falls on both alike.
  order="open auth"; [ $((round % 2)) -eq 0 ] && order="auth open"
  for kind in $order; do
    port=$open_port; pid=$open_pid
    [ "$kind" = auth ] && { port=$auth_port; pid=$auth_pid; }
    before=$(cpu_ticks "$pid")
    read -r rps p99 bad n <<< "$(measure "$port" "$work/$kind.lua")"
    spent=$(( $(cpu_ticks "$pid") - before ))
    per=$(awk -v t="$spent" -v hz="$ticks_per_s" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
    rates[$kind]+="$rps "
    cpus[$kind]+="$per "
    printf '%-24s %12s %10s %8s %14s\n' "$kind (round $round)" "$rps" "$p99" "$bad" "$per"
  done
done
median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
open_rps=$(median "${rates[open]}"); auth_rps=$(median "${rates[auth]}")
open_cpu=$(median "${cpus[open]}"); auth_cpu=$(median "${cpus[auth]}")
echo "==> timing the gate's own work per request (riffle-auth's example gate_cost)"
read -r gate_open gate_auth <<< "$(cargo run -q --release -p riffle-auth --example gate_cost)"
awk -v o="$open_rps" -v a="$auth_rps" -v oc="$open_cpu" -v ac="$auth_cpu" -v go="$gate_open" -v ga="$gate_auth" 'BEGIN {
  printf "median req/s: open %d, with auth %d: auth costs %.1f%% of throughput\n", o, a, (o > 0 ? (o - a) * 100 / o : 0)
  printf "median server CPU per request: open %.1f µs, with auth %.1f µs: auth costs %.1f%%\n", oc, ac, (ac - oc) * 100 / oc
  printf "the gate per request: open %d ns, with auth %d ns: %d ns more, %.2f%% of the open server'"'"'s %.1f µs (target: at most 5%%)\n", go, ga, ga - go, (ga - go) / 10 / oc, oc }'
