#!/usr/bin/env bash
# Feast SDK compatibility: starts `riffle serve` on the Feast fixtures' registry, points a
# Feast repo (online_store: remote) at it, and runs test_feast_sdk.py with Feast's SDK; then
# test_feast_offline.py, which starts `riffle serve-offline` on a registry with history and
# runs Feast's get_historical_features against it (offline_store: remote), in plain gRPC and
# over TLS (a test CA minted with the `openssl` command); then
# test_feast_jwt.py, which starts `riffle serve` with `[auth.jwt]` and reads through it with
# Feast's SDK sending JWTs (`auth: type: oidc`), minted by the test.
# Needs FEAST_PYTHON (a python with feast==0.67.0) and a built riffle binary (RIFFLE_BIN).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${FEAST_PYTHON:?set FEAST_PYTHON to a python that has feast 0.67 installed}
bin=${RIFFLE_BIN:-$root/target/debug/riffle}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --config "$root/crates/riffle-serve/tests/data/feast-fixtures.toml" \
  --store "embedded:$work/data" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 0.1
done

cp -r "$here/repo" "$work/repo"
cat > "$work/repo/feature_store.yaml" <<YAML
project: fixtures
provider: local
registry: $work/repo/registry.db
online_store:
  type: remote
  path: http://127.0.0.1:$port
offline_store:
  type: file
entity_key_serialization_version: 3
YAML
(cd "$work/repo" && "$(dirname "$py")/feast" apply > "$work/apply.log" 2>&1) || { cat "$work/apply.log"; exit 1; }
"$py" "$here/test_feast_sdk.py" "$work/repo" "http://127.0.0.1:$port" || { echo "--- riffle log"; tail -50 "$work/serve.log"; exit 1; }
"$py" "$here/test_feast_offline.py" "$bin" "$work/offline"
"$py" "$here/test_feast_jwt.py" "$bin" "$root/crates/riffle-serve/tests/data/feast-fixtures.toml" \
  "$work/repo/registry.db" "$work/jwt"
