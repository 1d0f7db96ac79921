#!/usr/bin/env bash
# Redis Streams beside the engine, in the same run: Debian's redis-server with appendonly yes and
# appendfsync everysec (its closest durability to our "interval" policy), redis-benchmark issuing
# pipelined XADD of 32-byte values to 100,000 keys; then engine_bench's appends for the same shape.
# Prints both rates and their ratio. Usage: bench/redis_streams.sh [BUILD_DIR] [MESSAGES]
set -euo pipefail
build=${1:-build}
n=${2:-2000000}
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || scripts/deps.sh bench
dir=$(mktemp -d /tmp/litegate-redis-XXXXXX)
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --dir "$dir" --appendonly yes --appendfsync everysec --save '' \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap '[ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null; sleep 0.5; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
payload=$(printf 'x%.0s' $(seq 32))
cmd="redis-benchmark -p $port -n $n -r 100000 -P 64 -c 8 -q XADD s:__rand_int__ '*' f $payload"
echo "# $cmd"
redis_rate=$(eval "$cmd" | tr '\r' '\n' | awk '/requests per second/ {for (i=1;i<=NF;i++) if ($i ~ /^[0-9.]+$/) {print $i; exit}}')
echo "redis XADD/s (appendfsync everysec, 100,000 keys, pipelined 64): $redis_rate"
kill "$(cat "$dir/redis.pid")"
echo "# $build/bench/engine_bench --only appends --messages $n --topics 100000"
out=$("$build/bench/engine_bench" --only appends --messages "$n" --topics 100000)
# (engine_bench also prints the 1,000-topic spread; the ratio uses 100,000 topics, as Redis does)
echo "$out"
ours=$(echo "$out" | awk '/100000 topics, interval/ {print $(NF-4)}' | head -1)
echo "litegate interval appends/s: $ours"
awk -v a="$ours" -v b="$redis_rate" 'BEGIN { if (b > 0) printf "ratio litegate(interval) / redis(everysec): %.2f\n", a / b }'
