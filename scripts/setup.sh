#!/usr/bin/env bash
# Installs everything wasmdapr's build, demo and tests need on a fresh
# machine. Idempotent: what is already there is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

# Guests are built for both WASI targets: preview 1 (core modules) and
# preview 2 (components).
installed=$(rustup target list --installed)
for target in wasm32-wasip1 wasm32-wasip2; do
  if ! grep -qx "$target" <<<"$installed"; then
    log "adding Rust target $target"
    rustup target add "$target"
  fi
done

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    log "adding rustup component $component"
    rustup component add "$component"
  fi
done

# The official Dapr SDKs the compatibility tests drive, pinned: Python in a
# virtualenv at .venv, JavaScript under the test's own folder.
sdk=crates/wasmdapr/tests/sdk
if [[ ! -x .venv/bin/python ]]; then
  log "creating the Python virtualenv .venv"
  python3 -m venv .venv
fi
# Installed again whenever the pinned requirements change.
stamp=.venv/.requirements.sha256
wanted=$(sha256sum "$sdk/python/requirements.txt" | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]] || ! .venv/bin/python -c 'import dapr.clients' 2>/dev/null; then
  log "installing the Dapr Python SDK"
  .venv/bin/pip install -q -r "$sdk/python/requirements.txt"
  echo "$wanted" > "$stamp"
fi
if [[ ! -d "$sdk/js/node_modules/@dapr/dapr" ]]; then
  log "installing the Dapr JavaScript SDK"
  (cd "$sdk/js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The AssemblyScript example's compiler and WASI shim, pinned by its lock
# file; its tests build it with `npm run build`. Installed again when a
# pinned version differs from the one in node_modules.
example=examples/assemblyscript-state
if ! (cd "$example" && node -e '
  const pinned = require("./package.json").devDependencies;
  for (const [name, version] of Object.entries(pinned)) {
    if (require(`./node_modules/${name}/package.json`).version !== version) process.exit(1);
  }' 2>/dev/null); then
  log "installing the AssemblyScript toolchain of $example"
  (cd "$example" && npm ci --no-audit --no-fund --loglevel=error)
fi
