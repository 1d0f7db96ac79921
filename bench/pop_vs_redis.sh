#!/usr/bin/env bash
# The pull API beside Redis Streams consumer groups, in one run on one machine (issue 4's benchmark):
# bench/pop_bench against a fresh litegate (durability fsync: a pop's ack is answered once the
# offsets are synced), then the same loop (8 consumers, XREADGROUP COUNT 32 + XACK of the ids) on
# Debian's redis-server with appendonly yes and appendfsync always (each event-loop turn's writes,
# acks included, fsynced before the replies) and again with appendfsync everysec. Prints every
# output, the command lines, and litegate / redis ratios. Usage: bench/pop_vs_redis.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || scripts/deps.sh bench
[ -x "$build/bench/pop_bench" ] && [ -x "$build/gateway/litegate" ] || ninja -C "$build" pop_bench litegate
echo "# uptime: $(uptime)"
echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
lg=$("$build/bench/pop_bench" --bin "$build/gateway/litegate")
echo "$lg"
dir=$(mktemp -d /tmp/litegate-redis-XXXXXX)
trap '[ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null; sleep 0.5; rm -rf "$dir"' EXIT
run_redis() { # $1: appendfsync policy
	rm -f "$dir"/*.aof "$dir"/appendonlydir/* 2>/dev/null || true
	local port=$((20000 + RANDOM % 20000))
	redis-server --port "$port" --dir "$dir" --appendonly yes --appendfsync "$1" --save '' \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	echo "# redis-server $(redis-server --version | awk '{print $3}') --appendonly yes --appendfsync $1 --save ''"
	"$build/bench/pop_bench" --redis-port "$port" --server-pid "$(cat "$dir/redis.pid")" --label "redis-$1"
	kill "$(cat "$dir/redis.pid")"
	sleep 0.5
	rm -f "$dir/redis.pid"
}
ra=$(run_redis always)
re=$(run_redis everysec)
echo "$ra"
echo "$re"
rate() { echo "$1" | awk '/^RESULT/ && / kind=throughput / {for (i=1;i<=NF;i++) if ($i ~ /^rate=/) {sub("rate=","",$i); print $i}}' | head -1; }
l=$(rate "$lg"); a=$(rate "$ra"); e=$(rate "$re")
echo "# uptime at end: $(uptime)"
awk -v l="$l" -v a="$a" -v e="$e" 'BEGIN {
	printf "pop+ack msg/s: litegate (fsync) %d, redis (appendfsync always) %d, redis (everysec) %d\n", l, a, e
	if (a > 0 && e > 0) printf "ratio litegate / redis: %.2f (always), %.2f (everysec)\n", l / a, l / e }'
