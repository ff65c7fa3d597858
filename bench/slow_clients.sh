#!/usr/bin/env bash
# Slow clients: 3,000 connections that each send half a request head and then nothing,
# against `riffle serve` while wrk reads from it. Prints how long each half-sent connection
# stayed open (every one must be closed within the header-read timeout plus two seconds)
# and what wrk saw meanwhile (no errors, no non-2xx). Not a test: it reports.
#
#   bench/slow_clients.sh [--connections 3000] [--header-timeout 5s] [--duration 15s]
#   RIFFLE_BIN=path/to/riffle bench/slow_clients.sh ...
#
# Needs: wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

slow=3000
timeout=5s
duration=15s
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) slow=$2; shift 2 ;;
    --header-timeout) timeout=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in wrk curl python3; do
  command -v "$tool" > /dev/null || { echo "bench needs $tool" >&2; exit 1; }
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
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The fraud example with the header-read timeout set (an empty embedded store: every read
# is answered with training defaults, status missing).
sed "s/^listen = \"127.0.0.1:6566\"/listen = \"127.0.0.1:$port\"\nheader_read_timeout = \"$timeout\"/" \
  examples/fraud/riffle.toml > "$work/riffle.toml"
RUST_LOG=warn "$bin" serve --config "$work/riffle.toml" --store "embedded:$work/data" > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break; sleep 0.05; done

echo "==> $slow half-sent requests (header-read timeout $timeout) while wrk reads for $duration"
wrk -t2 -c32 -d"$duration" "http://127.0.0.1:$port/v1/features/user/u1?groups=user_profile" > "$work/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 1
python3 - "$port" "$slow" "${timeout%s}" <<'PY'
import resource, selectors, socket, sys, time
port, n, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
opened = {}
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/features/user/u1 HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, i)
    opened[i] = time.monotonic()
answered, lifetimes = 0, []
deadline = time.monotonic() + limit + 30
while opened and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.5):
        try:
            data = key.fileobj.recv(4096)
        except (ConnectionResetError, BlockingIOError):
            data = b""
        if data:
            answered += 1
        lifetimes.append(time.monotonic() - opened.pop(key.data))
        sel.unregister(key.fileobj)
        key.fileobj.close()
lifetimes.sort()
late = sum(1 for t in lifetimes if t > limit + 2)
print(f"    closed by the server: {len(lifetimes)} of {n}; still open after {limit + 30:.0f} s: {len(opened)}")
if lifetimes:
    print(f"    open for: min {lifetimes[0]:.2f} s, median {lifetimes[len(lifetimes)//2]:.2f} s, max {lifetimes[-1]:.2f} s (limit {limit:.0f} s + 2 s); later than that: {late}; answered with bytes: {answered}")
PY
wait "$wrk_pid" || true
echo "==> wrk against the same server meanwhile"
grep -E "Requests/sec|Socket errors|Non-2xx|requests in" "$work/wrk.txt" | sed 's/^/    /'
grep -q "Socket errors\|Non-2xx" "$work/wrk.txt" || echo "    no socket errors, no non-2xx answers"
