#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the gateway with its default config
# (conf/litegate.json: http://127.0.0.1:8080, data in ./data, the demo page at /) together with
# one demo model worker (build/worker/litegate-worker). Ctrl-C stops both; if either exits on its
# own, the other is stopped too.
#
# Arguments go to the gateway (e.g. --listen 127.0.0.1:9090, --log-level debug). The worker is
# pointed at the address given with --listen; with one set only in a --config file, set
# LITEGATE_URL=http://host:port as well.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

# Where the worker (and the health check) find the gateway.
listen=127.0.0.1:8080
prev=
for a in "$@"; do
  case "$a" in
    --listen=*) listen=${a#--listen=} ;;
    *) [ "$prev" = --listen ] && listen=$a ;;
  esac
  prev=$a
done
host=${listen%:*} port=${listen##*:}
case "$host" in '' | 0.0.0.0 | '*' | '[::]' | '::') host=127.0.0.1 ;; esac
url=${LITEGATE_URL:-http://$host:$port}

gateway= worker=
stopping=0
stop() {
  trap - INT TERM
  stopping=1
  # The worker first, while the gateway is still up: given SIGTERM alone (a signal sent to this
  # script, or a gateway that exited) it finishes the answer in progress (--grace-ms, 5 s at most)
  # and hands back what it cannot finish. At Ctrl-C the terminal has signalled both already; this
  # TERM is then a second signal, which makes both stop at once (an answer cut short is continued
  # by the next worker: docs/worker.md).
  if [ -n "$worker" ]; then kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; fi
  if [ -n "$gateway" ]; then kill -TERM "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true; fi
}
trap stop INT TERM

./build/gateway/litegate "$@" &
gateway=$!

# Wait for the gateway to answer, so the address printed below works when it is printed (the
# worker would wait for it on its own).
for _ in $(seq 300); do
  curl -sf "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$gateway" 2>/dev/null || break
  sleep 0.1
done

rc=0
if ! kill -0 "$gateway" 2>/dev/null; then
  wait "$gateway" || rc=$?
elif [ -x build/worker/litegate-worker ]; then
  ./build/worker/litegate-worker --gateway "$url" &
  worker=$!
else
  echo "litegate: build/worker/litegate-worker is not built: the demo page will get no answers" >&2
fi

if [ "$stopping" = 0 ] && [ "$rc" = 0 ]; then
  echo "litegate: open ${url/127.0.0.1/localhost} (Ctrl-C to stop)"
  wait -n $gateway $worker || rc=$?
fi
if [ "$stopping" = 0 ]; then
  # One of them exited on its own (the gateway could not start, say): stop the other.
  echo "litegate: a process exited (status $rc); stopping" >&2
  stop
  exit "$rc"
fi
