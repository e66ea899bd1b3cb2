#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every crate's unit
# and integration tests (which build the guest programs), doc tests, and the
# examples built for their wasm target and run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/services.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
cargo test --workspace --doc

step "examples"
# Honour CARGO_TARGET_DIR, as cargo does.
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
cargo build --target wasm32-wasip2 -p hello
# Its environment: NAME, and APP_ID, DAPR_HTTP_PORT and DAPR_GRPC_PORT of
# the implicit Dapr grant.
out=$("$target/debug/wasmdapr" run --env NAME=ci "$target/wasm32-wasip2/debug/hello.wasm" -- x)
expected='Hello, ci, from a WebAssembly component!
arguments granted: ["x"]
environment granted: 4 variable(s)
files: none granted
network: denied'
if [[ "$out" != "$expected" ]]; then
  printf 'examples/hello printed:\n%s\nexpected:\n%s\n' "$out" "$expected" >&2
  exit 1
fi
echo "examples/hello: ok" >&2

# The state demo on the embedded SQLite default, in a scratch directory so
# its `.wasmdapr/` is fresh, on a free port: both passes (the typed Dapr
# imports, then HTTP to the sidecar's port given in DAPR_HTTP_PORT) must
# print `Test successfully!`.
cargo build --target wasm32-wasip2 -p state-demo
demo_dir=$(mktemp -d)
out=$(cd "$demo_dir" && "$target/debug/wasmdapr" run --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0 \
  "$target/wasm32-wasip2/debug/state-demo.wasm") || status=$?
rm -rf "$demo_dir"
if [[ ${status:-0} -ne 0 || $(grep -c '^Test successfully!$' <<<"$out") -ne 2 \
      || "$out" != *"pass 2: the Dapr HTTP API at"* ]]; then
  printf 'examples/state-demo printed:\n%s\n' "$out" >&2
  exit 1
fi
echo "examples/state-demo: ok" >&2

# The counter, served as the README shows it: on the embedded SQLite
# default in a scratch directory, `--app-listen` on a free port; two POSTs
# must answer 1 then 2 (the readiness probe and the sidecar's GET
# /dapr/subscribe are GETs, which do not count), GET / must read 2, and
# SIGTERM must stop it with status 0.
cargo build --target wasm32-wasip2 -p http-counter
counter_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$counter_dir" && exec "$target/debug/wasmdapr" run --app-listen "127.0.0.1:$port" \
  --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0 "$target/wasm32-wasip2/debug/http-counter.wasm") &
counter_pid=$!
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/x" 2>/dev/null && break
  sleep 0.1
done
counts="$(curl -fsS -X POST "http://127.0.0.1:$port/") $(curl -fsS -X POST "http://127.0.0.1:$port/") $(curl -fsS "http://127.0.0.1:$port/")"
kill -TERM "$counter_pid"
wait "$counter_pid" || counter_status=$?
rm -rf "$counter_dir"
if [[ "$counts" != "1 2 2" || ${counter_status:-0} -ne 0 ]]; then
  printf 'examples/http-counter answered %s, exit status %s\n' "$counts" "${counter_status:-0}" >&2
  exit 1
fi
echo "examples/http-counter: ok" >&2
