#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing (idempotent), so a
# fresh machine passes too:
#   - redis-server and redis-cli (Debian: redis-server, redis-tools): real Redis processes
#   - Feast 0.67 in a private virtualenv: Feast's own SDK is run against Riffle
#   - tansu 0.6 (cargo install, ~10 min once): a real Kafka-protocol broker
#   - zlib headers (Debian: zlib1g-dev): the bundled librdkafka build links zlib
#   - promtool (Debian: prometheus): the generated alert rules are checked and unit-tested
#   - openssl: the Feast SDK test mints a CA for serve-offline over TLS
# Then: every Rust test (unit, integration against real Redis and tansu, end-to-end on the binary),
# and the Feast SDK compatibility test.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

apt_install() {
  if command -v apt-get > /dev/null; then
    say "installing $* (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
  else
    echo "missing $* and no apt-get to install it" >&2
    exit 1
  fi
}

command -v redis-server > /dev/null || apt_install redis-server
command -v redis-cli > /dev/null || apt_install redis-tools
command -v curl > /dev/null || apt_install curl
[ -e /usr/include/zlib.h ] || apt_install zlib1g-dev
command -v promtool > /dev/null || apt_install prometheus
command -v openssl > /dev/null || apt_install openssl

# cargo-installed tools (tansu) live here; the test kit finds tansu on the PATH.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v tansu > /dev/null; then
  say "installing tansu 0.6.0 (cargo install, once; ~10 min)"
  cargo install tansu --version 0.6.0 --locked --features dynostore
fi

feast_venv=${RIFFLE_FEAST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/riffle/feast-0.67}
if ! "$feast_venv/bin/python" -c 'import feast, sys; sys.exit(feast.__version__ != "0.67.0")' 2> /dev/null; then
  say "installing Feast 0.67 into $feast_venv (once)"
  command -v python3 > /dev/null || apt_install python3 python3-venv
  python3 -m venv "$feast_venv"
  "$feast_venv/bin/pip" install -q 'feast[redis]==0.67.0'
fi

say "cargo test --workspace"
cargo test --workspace --all-targets

say "Feast SDK compatibility (Feast 0.67's own client against riffle serve and riffle serve-offline)"
# `cargo test` above built the binary the end-to-end tests run; `cargo build -p riffle` here
# would resolve features without the dev-dependencies and build DataFusion and the rest again.
[ -x target/debug/riffle ] || { echo "cargo test did not build target/debug/riffle" >&2; exit 1; }
FEAST_PYTHON="$feast_venv/bin/python" RIFFLE_BIN="$PWD/target/debug/riffle" tests/feast-sdk/run.sh
