#!/usr/bin/env bash
# The demo: sets up the machine, builds wasmdapr and the state-demo app, and
# runs it: the original prototype's scenario (save `weapon`, bulk-save
# `planets`, read both back) through the typed Dapr imports, then again over
# plain HTTP to the Dapr HTTP API, on the embedded SQLite store unless flags
# say otherwise.
# Usage: scripts/demo.sh [extra `run` flags], e.g.
#   scripts/demo.sh --resources-path examples/components/redis
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p wasmdapr
cargo build --release --target wasm32-wasip2 -p state-demo

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
app=$target/wasm32-wasip2/release/state-demo.wasm
echo "\$ wasmdapr run $* $app" >&2
exec "$target/release/wasmdapr" run "$@" "$app"
