#!/usr/bin/env bash
# Memory that is given back: resident memory (RSS) of a `wasmdapr sidecar`
# on its embedded SQLite store and of a served Wasm app
# (`wasmdapr run --app-listen`), idle, at the peak of storms of bad and big
# input, and after IDLE seconds of idleness, with the ratio to the idle
# baseline (the target of issue 10, item 6: back to <= 2x within 30 s).
#
# Sidecar storms: STORM_BODIES requests with 4 MiB bodies (saves of nearly
# 4 MiB values, and bodies over `--max-body-size` that get 413); a store of
# STORE_KEYS keys of ~1 KiB JSON; queries over it (filters, sorts, pages);
# bulk gets of every key. Served-app storms (`serve_hostile`): handlers that
# fill their memory until `--max-memory` traps them, 4 MiB answers, and many
# concurrent sleeping handlers, each in its own pooled instance.
# Appends its section to bench/RESULTS.md (between the `memory.sh` markers).
#
#   bench/memory.sh                          # builds and uses target/debug/wasmdapr
#   BIN=target/release/wasmdapr bench/memory.sh
#   IDLE=30 STORE_KEYS=50000 bench/memory.sh
#   HOSTILE=path/to/serve_hostile.wasm WRITE_RESULTS=0 bench/memory.sh   # no build, no RESULTS.md
#   PARTS=sidecar bench/memory.sh            # only the sidecar (or PARTS=app)
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE=${IDLE:-30}
STORM_BODIES=${STORM_BODIES:-200}
STORE_KEYS=${STORE_KEYS:-20000}
CONCURRENCY=${CONCURRENCY:-16}
APP_STORM=${APP_STORM:-100}
PARTS=${PARTS:-sidecar app}

if [[ -z ${BIN:-} ]]; then
  cargo build -p wasmdapr
  bin=${CARGO_TARGET_DIR:-target}/debug/wasmdapr
else
  bin=$BIN
fi
bin=$(realpath "$bin")
if [[ -z ${HOSTILE:-} ]]; then
  # The guest as the test artifacts build it (a small release build of the
  # guest only).
  guests=${CARGO_TARGET_DIR:-target}/bench-guests
  cargo build --release --target wasm32-wasip2 --manifest-path test-programs/Cargo.toml \
    --target-dir "$guests" --bin serve_hostile
  hostile=$guests/wasm32-wasip2/release/serve_hostile.wasm
else
  hostile=$HOSTILE
fi
hostile=$(realpath "$hostile")

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
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}'; }

# The load generator: stdlib Python, one function per storm.
cat >"$work/storm.py" <<'PY'
import json, sys, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor

base, storm, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MIB = 1 << 20

def call(method, path, body=None, timeout=120):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # a refused or reset connection counts as an answer too
        return 0, str(e).encode()

def each(f, items):
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(f, items))

def bodies():
    # A save of a value just under the 4 MiB limit (JSON string), then a
    # body just over it (413).
    value = "v" * (4 * MIB - 200)
    def one(i):
        if i % 2 == 0:
            return call("POST", "/v1.0/state/statestore", [{"key": f"big{i % 8}", "value": value}])[0]
        return call("POST", "/v1.0/state/statestore", b"[" + b" " * (4 * MIB + 10) + b"]")[0]
    return each(one, range(n))

def store():
    pad = "p" * 1000
    def one(start):
        items = [{"key": f"k{i:06}", "value": {"n": i, "even": i % 2 == 0, "pad": pad}}
                 for i in range(start, min(start + 500, n))]
        return call("POST", "/v1.0/state/statestore", items)[0]
    return each(one, range(0, n, 500))

def queries():
    shapes = [
        {"filter": {"EQ": {"even": True}}, "page": {"limit": 10}},
        {"filter": {"GT": {"n": 100}}, "sort": [{"key": "n", "order": "DESC"}], "page": {"limit": 50}},
        {"sort": [{"key": "n"}], "page": {"limit": 100, "token": "1000"}},
        {"filter": {"OR": [{"EQ": {"n": 1}}, {"IN": {"n": [2, 3]}}]}},
        {"page": {"limit": 1000}},
    ]
    return each(lambda i: call("POST", "/v1.0-alpha1/state/statestore/query", shapes[i % len(shapes)])[0],
                range(n))

def bulk():
    keys = [f"k{i:06}" for i in range(int(sys.argv[5]))]
    return each(lambda i: call("POST", "/v1.0/state/statestore/bulk", {"keys": keys, "parallelism": 0})[0],
                range(n))

def app():
    # Handlers that trap at --max-memory, 4 MiB answers, sleepers that hold
    # their instance, and plain requests, all at once.
    routes = ["/bomb", "/big?bytes=4194304", "/sleep?ms=300", "/"]
    return each(lambda i: call("GET", routes[i % len(routes)])[0], range(n))

codes = {"bodies": bodies, "store": store, "queries": queries, "bulk": bulk, "app": app}[storm]()
summary = {}
for code in codes:
    summary[code] = summary.get(code, 0) + 1
print(" ".join(f"{code}x{count}" for code, count in sorted(summary.items())))
PY
storm() { python3 "$work/storm.py" "$@"; }

# --- The sidecar on SQLite (the embedded default store `statestore`).
s_idle=0 s_after=0 s_peak=0 s_idle_after=0 s_bodies=0 s_queries=0
if [[ $PARTS == *sidecar* ]]; then
http_port=$(free_port)
mkdir -p "$work/sidecar"
(cd "$work/sidecar" && XDG_DATA_HOME="$work" exec "$bin" sidecar --app-id memory \
  --dapr-http-port "$http_port" --dapr-grpc-port 0 2>"$work/sidecar.log") & pids+=($!); sidecar=$!
wait_for "http://127.0.0.1:$http_port/v1.0/healthz"
sleep 2
s_idle=$(rss_kib "$sidecar")
echo "sidecar idle: $(mib "$s_idle")"
base="http://127.0.0.1:$http_port"
echo "4 MiB bodies: $(storm "$base" bodies "$STORM_BODIES" "$CONCURRENCY")"
s_bodies=$(rss_kib "$sidecar")
echo "store of $STORE_KEYS keys: $(storm "$base" store "$STORE_KEYS" 4)"
echo "queries: $(storm "$base" queries 100 "$CONCURRENCY")"
s_queries=$(rss_kib "$sidecar")
echo "bulk gets: $(storm "$base" bulk 8 4 "$STORE_KEYS")"
s_peak=$(hwm_kib "$sidecar")
s_after=$(rss_kib "$sidecar")
echo "sidecar after the storms: $(mib "$s_after") (peak $(mib "$s_peak")); idle for ${IDLE}s"
sleep "$IDLE"
s_idle_after=$(rss_kib "$sidecar")
echo "sidecar after ${IDLE}s idle: $(mib "$s_idle_after")"
kill "$sidecar"
fi

# --- A served Wasm app with its embedded sidecar.
a_idle=0 a_after=0 a_peak=0 a_idle_after=0
if [[ $PARTS == *app* ]]; then
app_port=$(free_port)
mkdir -p "$work/app"
(cd "$work/app" && XDG_DATA_HOME="$work" exec "$bin" run --app-id hostile --app-listen "127.0.0.1:$app_port" \
  --dapr-http-port 0 --dapr-grpc-port 0 --max-memory 64MiB --cache-dir "$work/cache" \
  "$hostile" 2>"$work/app.log") & pids+=($!); app=$!
wait_for "http://127.0.0.1:$app_port/"
sleep 2
a_idle=$(rss_kib "$app")
echo "app idle: $(mib "$a_idle")"
for round in 1 2 3; do
  echo "hostile storm $round: $(storm "http://127.0.0.1:$app_port" app "$((APP_STORM * 4))" "$APP_STORM")"
done
a_peak=$(hwm_kib "$app")
a_after=$(rss_kib "$app")
echo "app after the storms: $(mib "$a_after") (peak $(mib "$a_peak")); idle for ${IDLE}s"
sleep "$IDLE"
a_idle_after=$(rss_kib "$app")
echo "app after ${IDLE}s idle: $(mib "$a_idle_after")"
kill "$app"
fi

s_ratio=$(ratio "$s_idle_after" "$s_idle")
a_ratio=$(ratio "$a_idle_after" "$a_idle")
echo "ratio after idle / idle baseline: sidecar ${s_ratio}x, app ${a_ratio}x (target <= 2x)"

commit=$(git rev-parse --short HEAD)
dirty=$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock && echo "" || echo " (working tree)")
build=$([[ $bin == */release/* ]] && echo release || echo debug)
section="$work/section.md"
cat >"$section" <<EOF
<!-- memory.sh -->
## Memory given back after storms

Made by \`bench/memory.sh\` (IDLE=${IDLE}s, STORM_BODIES=$STORM_BODIES, STORE_KEYS=$STORE_KEYS, CONCURRENCY=$CONCURRENCY, APP_STORM=$APP_STORM) on $(date -u +%F) at commit \`$commit\`$dirty, $(nproc) cores, $build build. RSS from \`/proc/PID/status\` (peak: \`VmHWM\`).

| process | idle | after the storms | peak | after ${IDLE} s idle | after idle / idle |
|---|---|---|---|---|---|
| \`wasmdapr sidecar\` on SQLite | $(mib "$s_idle") | $(mib "$s_after") | $(mib "$s_peak") | $(mib "$s_idle_after") | **${s_ratio}×** |
| \`wasmdapr run --app-listen\` of \`serve_hostile\` | $(mib "$a_idle") | $(mib "$a_after") | $(mib "$a_peak") | $(mib "$a_idle_after") | **${a_ratio}×** |

Sidecar storms: $STORM_BODIES requests with 4 MiB bodies (half saves of a value just under \`--max-body-size\`, half bodies over it, refused: 413, or the connection closed before the client had sent it all), $CONCURRENCY at a time (RSS after them: $(mib "$s_bodies")); a store of $STORE_KEYS keys of ~1 KiB JSON; 100 queries of five shapes (filter, sort, pages; RSS after them: $(mib "$s_queries")); 8 bulk gets of every key (\`parallelism\` 0). App storms: 3 rounds of $((APP_STORM * 4)) requests, $APP_STORM at a time, to handlers that fill memory until \`--max-memory 64MiB\` traps them, that answer 4 MiB, that sleep 300 ms, and that answer \`ok\`. Target: back to at most 2× the idle RSS within 30 s.
<!-- /memory.sh -->
EOF

[[ ${WRITE_RESULTS:-1} == 1 ]] && python3 - "$section" <<'PY'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n")
path = "bench/RESULTS.md"
text = open(path).read()
pattern = re.compile(r"<!-- memory\.sh -->.*?<!-- /memory\.sh -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
PY
cat "$section"
