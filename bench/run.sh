#!/usr/bin/env bash
# Runs every benchmark and writes bench/RESULTS.md. One command:
#   bench/run.sh
# Figures are reported against baselines measured in the same run. Honours
# CARGO_TARGET_DIR, as cargo does (e.g. a target directory of its own, so a
# release build does not hold the lock of the one used for development).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/services.sh
if ! command -v hyperfine >/dev/null 2>&1; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq hyperfine
fi

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR=$target
cargo build --release -p wasmdapr
cargo build --release --target wasm32-wasip2 -p hello
app=$target/wasm32-wasip2/release/hello.wasm
bin=$target/release/wasmdapr

# 1. In-process instantiate + run, pooling vs on-demand allocation (criterion).
cargo bench -p wasmdapr-host --bench instantiate -- --noplot

# 2. `wasmdapr run` of the same file: first run (compiles) vs second run
#    (compiled code mapped from the cache).
out=$target/bench
mkdir -p "$out"
cold=$(mktemp -d); warm=$(mktemp -d)
trap 'rm -rf "$cold" "$warm"' EXIT
hyperfine -N --warmup 2 --runs 20 --prepare "rm -rf $cold" \
  --export-json "$out/first-run.json" "$bin run --cache-dir $cold --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0 $app"
hyperfine -N --warmup 3 --runs 100 \
  --export-json "$out/second-run.json" "$bin run --cache-dir $warm --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0 $app"

# 3. State GET/SET through the sidecar (HTTP, gRPC) on Redis vs raw Redis,
#    and the sidecar's RSS; the same GET from inside a guest (typed import,
#    wasi:http), and the memory of live guest instances.
#    Twice: as deployed (two cores), then with the bench, the sidecar, the
#    guests and redis-server on one core (see RESULTS.md for why). Redis's
#    own affinity is given back on exit.
cargo bench -p wasmdapr --bench state
redis_pid=$(pgrep -x redis-server | head -1)
[[ -n $redis_pid ]] || { echo "run.sh: redis-server is not running" >&2; exit 1; }
redis_cpus=$(taskset -pc "$redis_pid" | awk -F': ' '{print $2}')
trap 'taskset -pc "$redis_cpus" "$redis_pid" >/dev/null 2>&1 || true; rm -rf "$cold" "$warm"' EXIT
taskset -pc 0 "$redis_pid" >/dev/null
BENCH_STATE_OUT=state-one-core.json taskset -c 0 cargo bench -p wasmdapr --bench state
taskset -pc "$redis_cpus" "$redis_pid" >/dev/null

# 4. Cold start: `wasmdapr run` of a cached app up to its first completed
#    state call (the bench guest doing one typed GET on Redis), against the
#    cached hello app (no state call) with the same components as baseline.
#    The key was seeded by step 3.
cargo build --release --target wasm32-wasip2 --manifest-path test-programs/Cargo.toml \
  --target-dir "$target/bench-guests" --bin bench_state_get
guest=$target/bench-guests/wasm32-wasip2/release/bench_state_get.wasm
common="run --cache-dir $warm --resources-path examples/components/redis --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0"
hyperfine -N --warmup 3 --runs 100 --export-json "$out/cold-start.json" \
  -n "hello, no state call" "$bin $common $app" \
  -n "first state GET" "$bin $common --app-id bench $guest -- typed statestore bench 1"

# The report replaces everything in RESULTS.md but the sections other
# scripts keep there (between `<!-- NAME.sh -->` markers).
python3 bench/report.py > "$out/RESULTS.md"
mv "$out/RESULTS.md" bench/RESULTS.md
cat bench/RESULTS.md
