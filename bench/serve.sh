#!/usr/bin/env bash
# Serving benchmark: HTTP requests/s and latency of Wasm HTTP handlers served
# by `wasmdapr run --app-listen` (a fresh instance per request), against a
# plain hyper server doing the same work natively, measured in the same run
# with the same load generator (wrk, from the distribution's packages):
#
#   (a) the hello handler (`test-programs/src/bin/serve_hello.rs`) vs the
#       hyper baseline (`crates/wasmdapr-host/examples/hello_baseline.rs`);
#   (b) `examples/http-counter` on Redis (ETag read-modify-write of one key);
#   (c) one service-invocation hop: the hello handler reached through the
#       embedded sidecar's `/v1.0/invoke/hello/method/…` vs directly;
#
# plus the resident memory of the serving process, idle and under load.
# Writes its section of bench/RESULTS.md (between the `serve.sh` markers).
# Where `wasmtime` is on PATH (or WASMTIME names it), `wasmtime serve` runs
# the same hello guest as a peer row; INSTALL_PEERS=1 first installs
# wasmtime-cli (the Wasmtime release wasmdapr embeds) from crates.io into
# target/bench-tools (a long release build). Spin is not on any registry this
# project reaches, so it is measured only where `spin` is installed by hand.
#   bench/serve.sh            # 10 s per measurement
#   DURATION=30s bench/serve.sh
#   INSTALL_PEERS=1 bench/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
COUNTER_CONNECTIONS=${COUNTER_CONNECTIONS:-8}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || scripts/services.sh

# Honours CARGO_TARGET_DIR, as cargo does (a release target of its own
# keeps benchmarks off the development build's lock).
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR=$target
cargo build --release -p wasmdapr
cargo build --release -p wasmdapr-host --example hello_baseline
cargo build --release --target wasm32-wasip2 --manifest-path test-programs/Cargo.toml \
  --target-dir "$target/bench-guests" --bin serve_hello
cargo build --release --target wasm32-wasip2 -p http-counter
wasmtime=${WASMTIME:-$(command -v wasmtime || true)}
if [[ -z $wasmtime && -x target/bench-tools/bin/wasmtime ]]; then
  wasmtime=target/bench-tools/bin/wasmtime
fi
if [[ -z $wasmtime && ${INSTALL_PEERS:-0} == 1 ]]; then
  cargo install wasmtime-cli --version 48.0.8 --locked --root target/bench-tools
  wasmtime=target/bench-tools/bin/wasmtime
fi
bin=$target/release/wasmdapr
baseline=$target/release/examples/hello_baseline
hello=$target/bench-guests/wasm32-wasip2/release/serve_hello.wasm
counter=$target/wasm32-wasip2/release/http-counter.wasm

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL
  for _ in $(seq 1 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing answered at $1" >&2; return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

# wrk with latency percentiles; prints "requests/s p50 p99" (latencies as wrk writes them).
load() { # URL CONNECTIONS NAME [METHOD]
  local script=""
  if [[ ${4:-GET} == POST ]]; then
    script="$work/post.lua"; echo 'wrk.method = "POST"' >"$script"; script="-s $script"
  fi
  # shellcheck disable=SC2086
  wrk -t"$THREADS" -c"$2" -d"$DURATION" --latency $script "$1" >"$work/$3.txt"
  awk '/^Requests\/sec:/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
       /Non-2xx or 3xx responses/ {bad=$NF}
       END {printf "%.0f %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad)}' "$work/$3.txt"
}

# A measurement that also samples the server's RSS halfway through the load.
load_with_rss() { # PID URL CONNECTIONS NAME [METHOD]
  local pid=$1; shift
  local half=$(( ${DURATION%s} / 2 ))
  ( sleep "$half"; rss_kib "$pid" >"$work/rss-$3" ) &
  load "$@"
}

# Other work on the machine skews every row alike; the report gives the load.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# (a) the hyper baseline.
port=$(free_port)
"$baseline" "127.0.0.1:$port" 2>/dev/null & pids+=($!); base_pid=$!
wait_for "http://127.0.0.1:$port/"
read -r base_rps base_p50 base_p99 base_bad < <(load_with_rss "$base_pid" "http://127.0.0.1:$port/" "$CONNECTIONS" baseline)
base_rss=$(cat "$work/rss-baseline")
kill "$base_pid"

# (a) + (c): the hello handler, served publicly and through the sidecar.
app_port=$(free_port); dapr_port=$(free_port)
(cd "$work" && exec "$bin" run --app-id hello --app-listen "127.0.0.1:$app_port" \
  --dapr-http-port "$dapr_port" --dapr-grpc-port 0 --dapr-internal-grpc-port 0 --cache-dir "$work/cache" "$hello") \
  2>"$work/hello.log" & pids+=($!); hello_pid=$!
wait_for "http://127.0.0.1:$app_port/"
wait_for "http://127.0.0.1:$dapr_port/v1.0/healthz"
sleep 1
idle_rss=$(rss_kib "$hello_pid")
read -r wasm_rps wasm_p50 wasm_p99 wasm_bad < <(load_with_rss "$hello_pid" "http://127.0.0.1:$app_port/" "$CONNECTIONS" hello)
load_rss=$(cat "$work/rss-hello")
# One hop: sequential-ish latency matters more than throughput here, so
# both sides run with the same connections in the same process.
read -r direct_rps direct_p50 direct_p99 direct_bad < <(load "http://127.0.0.1:$app_port/method/x" 8 direct)
read -r hop_rps hop_p50 hop_p99 hop_bad < <(load "http://127.0.0.1:$dapr_port/v1.0/invoke/hello/method/x" 8 hop)
kill "$hello_pid"

# The peer: `wasmtime serve` on the same guest (also a fresh instance per
# request, pooling allocator on), where installed.
peer_row=""
peer_note="\`wasmtime serve\` is not installed here (\`INSTALL_PEERS=1\` installs it), so no peer was measured."
if [[ -n $wasmtime ]]; then
  peer_port=$(free_port)
  "$wasmtime" serve -S cli=y -O pooling-allocator=y --addr "127.0.0.1:$peer_port" "$hello" \
    2>"$work/wasmtime.log" & pids+=($!); peer_pid=$!
  wait_for "http://127.0.0.1:$peer_port/"
  read -r peer_rps peer_p50 peer_p99 peer_bad < <(load "http://127.0.0.1:$peer_port/" "$CONNECTIONS" peer)
  kill "$peer_pid"
  peer_version=$("$wasmtime" --version)
  peer_row="| \`$peer_version serve\` (peer, same guest) | $CONNECTIONS | $peer_rps | $peer_p50 | $peer_p99 | $peer_bad |"
  peer_ratio=$(awk -v a="$wasm_rps" -v b="$peer_rps" 'BEGIN {printf "%.2f", a / b}')
  peer_note="On the same guest, wasmdapr serves **$peer_ratio×** the requests/s of \`wasmtime serve\`."
fi

# (b) the counter on Redis.
counter_port=$(free_port)
(cd "$work" && exec "$bin" run --app-id "bench-counter-$$" --app-listen "127.0.0.1:$counter_port" \
  --resources-path "$OLDPWD/examples/components/redis" --dapr-http-port 0 --dapr-grpc-port 0 --dapr-internal-grpc-port 0 \
  --cache-dir "$work/cache" "$counter") 2>"$work/counter.log" & pids+=($!); counter_pid=$!
wait_for "http://127.0.0.1:$counter_port/"
read -r counter_rps counter_p50 counter_p99 counter_bad < <(load "http://127.0.0.1:$counter_port/" "$COUNTER_CONNECTIONS" counter POST)
kill "$counter_pid"
redis-cli -h 127.0.0.1 -p 6379 del "bench-counter-$$||counter" >/dev/null || true

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cores=$(nproc)
per_core=$(( wasm_rps / cores ))
ratio=$(awk -v a="$wasm_rps" -v b="$base_rps" 'BEGIN {printf "%.2f", a / b}')
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'; }
added_p50=$(awk -v h="$(to_us "$hop_p50")" -v d="$(to_us "$direct_p50")" 'BEGIN {printf "%+.0f µs", h - d}')
added_p99=$(awk -v h="$(to_us "$hop_p99")" -v d="$(to_us "$direct_p99")" 'BEGIN {printf "%+.0f µs", h - d}')
commit=$(git rev-parse --short HEAD)
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
# `wrk -v` prints its version and usage, and exits 1.
wrk_version=$( (wrk -v 2>&1 || true) | head -1 | awk '{print $1, $2}')

section="$work/section.md"
cat >"$section" <<EOF
<!-- serve.sh -->
## Serving HTTP apps: a fresh instance per request

Made by \`bench/serve.sh\` (DURATION=$DURATION) on $(date -u +%F) at commit \`$commit\` (working tree), $cores cores ($cpu), release build. Load: $wrk_version (Debian package), $THREADS threads, on loopback, sharing the $cores cores with the server; load average (1, 5, 15 min) $load_before before the measurements, $load_after after. Every Wasm request runs in a new instance from the pooling allocator (\`wasmdapr run --app-listen\`, default \`--max-concurrency\`).

| server | connections | requests/s | p50 | p99 | non-2xx |
|---|---|---|---|---|---|
| plain hyper hello (baseline, native) | $CONNECTIONS | $base_rps | $base_p50 | $base_p99 | $base_bad |
| Wasm hello handler (\`serve_hello\`) | $CONNECTIONS | $wasm_rps | $wasm_p50 | $wasm_p99 | $wasm_bad |
| Wasm hello, direct (\`--app-listen\`) | 8 | $direct_rps | $direct_p50 | $direct_p99 | $direct_bad |
| Wasm hello, one invocation hop (sidecar \`/v1.0/invoke/hello/method/x\`) | 8 | $hop_rps | $hop_p50 | $hop_p99 | $hop_bad |
| \`examples/http-counter\` on Redis (POST, one key) | $COUNTER_CONNECTIONS | $counter_rps | $counter_p50 | $counter_p99 | $counter_bad |
$peer_row

The Wasm hello handler serves **$ratio×** the baseline's requests/s, $per_core requests/s per core. One invocation hop adds **$added_p50** p50 ($added_p99 p99) over calling the handler directly. Resident memory of the serving process (Wasm hello, with its embedded sidecar): idle $(mib "$idle_rss"), under load $(mib "$load_rss"); the hyper baseline under load: $(mib "$base_rss").

$peer_note \`spin\` is not installed on this machine (no registry this project reaches has it), so the Spin comparison of the issue was not measured. The counter row is bounded by its design: every request read-modify-writes the same Redis key and retries on an ETag conflict.
<!-- /serve.sh -->
EOF

python3 - "$section" <<'PY'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n")
path = "bench/RESULTS.md"
text = open(path).read()
pattern = re.compile(r"<!-- serve\.sh -->.*?<!-- /serve\.sh -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
PY
cat "$section"
