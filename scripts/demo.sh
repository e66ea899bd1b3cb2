#!/usr/bin/env bash
# The demo: sets up the machine, builds wasmdapr and the hello app, and runs
# the app with a few grants. Usage: scripts/demo.sh [extra `run` flags]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p wasmdapr
cargo build --release --target wasm32-wasip2 -p hello

app=target/wasm32-wasip2/release/hello.wasm
echo "\$ wasmdapr run --env NAME=Dapr $app -- from the demo" >&2
exec target/release/wasmdapr run --env NAME=Dapr "$@" "$app" -- from the demo
