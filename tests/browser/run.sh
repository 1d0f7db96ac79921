#!/bin/sh
# Run the real-browser tests of the chat demo: Debian's chromium driven by playwright-core.
# Needs the gateway and the worker built (build/gateway/litegate and build/worker/litegate-worker, or
# LITEGATE_BIN and LITEGATE_WORKER_BIN) and Node.js (with npm).
set -eu
cd "$(dirname "$0")"

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
	echo "run.sh: installing chromium with apt" >&2
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update && apt-get install -y chromium
	else
		sudo apt-get update && sudo apt-get install -y chromium
	fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "run.sh: node and npm are needed (Node.js 20 or later)" >&2
	exit 1
fi
bin="${LITEGATE_BIN:-../../build/gateway/litegate}"
if [ ! -x "$bin" ]; then
	echo "run.sh: no gateway binary at $bin: build the project first (cmake -B build && cmake --build build) or set LITEGATE_BIN" >&2
	exit 1
fi
worker="${LITEGATE_WORKER_BIN:-../../build/worker/litegate-worker}"
if [ ! -x "$worker" ]; then
	echo "run.sh: no worker binary at $worker: build the project first (cmake -B build && cmake --build build) or set LITEGATE_WORKER_BIN" >&2
	exit 1
fi

# playwright-core never downloads a browser; the variable makes sure nothing else tries.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-concurrency=1 "$@" demo.test.mjs
