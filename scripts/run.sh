#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the gateway with its default config
# (conf/litegate.json: http://127.0.0.1:8080, data in ./data, the demo page at /) together with
# one demo model worker when it is built. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

pids=()
stop() {
  trap - INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM

./build/gateway/litegate "$@" &
pids+=($!)
if [ -x build/worker/litegate-worker ]; then
  # Wait for the gateway to answer before the worker connects.
  for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  ./build/worker/litegate-worker --gateway http://127.0.0.1:8080 &
  pids+=($!)
fi
echo "litegate: open http://localhost:8080 (Ctrl-C to stop)"
wait -n "${pids[@]}" || true
stop
