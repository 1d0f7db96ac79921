#!/usr/bin/env bash
# litegate beside nginx + nchan (Debian's libnginx-mod-nchan, one worker, memory store, message
# buffer, EventSource), in the same run, driven by the same load tool (bench/loadgen) through URL
# templates. Workloads (issue 3, "Benchmark"): 1,000 sessions at 20 tokens/s each; a ramp to the
# highest rate held with p99 < 50 ms and nothing lost; memory per idle SSE connection (10,000, and
# 50,000 when the descriptor limits allow); a resume test (subscribers drop for ~1 s and come back
# with Last-Event-ID); a streamed NDJSON publish against one POST per message. Prints a table with
# ratios and every command, then stops both servers and removes the temp dir.
#
# Usage: bench/gateway_vs_nchan.sh [BUILD_DIR]          (BUILD_DIR defaults to build)
# Environment (defaults): DURATION=10 (s per workload) SESSIONS=1000 RATE=20000 PUBLISHERS=64
#   IDLE=10000 IDLE_BIG=50000 (0 skips) RAMP_START=2500 RAMP_FACTOR=1.5 RAMP_STEP_S=4
#   RESUME_RATE=5000 DIAG_NONE=1 (also run a litegate with durability "none", to tell the disk's
#   share from the CPU's; 0 skips) KEEP=1 (keep the temp dir and its logs)
set -euo pipefail
build=${1:-build}
DURATION=${DURATION:-10}
SESSIONS=${SESSIONS:-1000}
RATE=${RATE:-20000}
PUBLISHERS=${PUBLISHERS:-64}
IDLE=${IDLE:-10000}
IDLE_BIG=${IDLE_BIG:-50000}
RAMP_START=${RAMP_START:-2500}
RAMP_FACTOR=${RAMP_FACTOR:-1.5}
RAMP_STEP_S=${RAMP_STEP_S:-4}
RESUME_RATE=${RESUME_RATE:-5000}
DIAG_NONE=${DIAG_NONE:-1}
cd "$(dirname "$0")/.."
root=$(pwd)

# ---- packages and binaries ----
if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  pkgs=(libnginx-mod-nchan)
  command -v nginx >/dev/null || pkgs+=(nginx-light)
  echo "# installing ${pkgs[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || { echo "nchan module not found" >&2; exit 1; }
if [ ! -x "$build/bench/loadgen" ] || [ ! -x "$build/gateway/litegate" ]; then
  [ -f "$build/build.ninja" ] || [ -f "$build/Makefile" ] ||
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" --target loadgen litegate >/dev/null
fi
LOADGEN=$root/$build/bench/loadgen
LITEGATE=$root/$build/gateway/litegate
"$LOADGEN" --self-test >/dev/null || { echo "loadgen --self-test failed" >&2; exit 1; }

# ---- descriptors: each side of 50,000 connections needs its own 50,000 ----
ulimit -Hn 1048576 2>/dev/null || ulimit -Hn 262144 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576

tmp=$(mktemp -d /tmp/litegate-vs-nchan-XXXXXX)
lg_pid=; ngx_pid=; ln_pid=
cleanup() {
  set +e
  stop_servers
  if [ -n "${KEEP:-}" ]; then echo "# kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    ss -ltn "sport = :$p" 2>/dev/null | grep -q LISTEN || { echo "$p"; return; }
  done
  return 1
}
wait_http() { # url log: up to 10 s
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up; $2 says:" >&2
  tail -5 "$2" >&2
  return 1
}

# ---- the servers; (re)started fresh on new free ports by start_servers ----
lg_port=; ln_port=; ngx_port=; ngx_worker=
start_litegate() { # litegate on its default config (durability fsync), data in the temp dir
  lg_port=$(free_port)
  "$LITEGATE" --listen "127.0.0.1:$lg_port" --data-dir "$tmp/data" --log-level warn >>"$tmp/litegate.log" 2>&1 &
  lg_pid=$!
  wait_http "http://127.0.0.1:$lg_port/healthz" "$tmp/litegate.log"
}
start_none() { # diagnostic only: the same gateway with durability "none" (replies before any fsync)
  ln_port=$(free_port)
  sed 's/"durability": *"fsync"/"durability": "none"/' conf/litegate.json >"$tmp/none.json"
  "$LITEGATE" --config "$tmp/none.json" --listen "127.0.0.1:$ln_port" --data-dir "$tmp/data-none" \
    --log-level warn >>"$tmp/litegate-none.log" 2>&1 &
  ln_pid=$!
  wait_http "http://127.0.0.1:$ln_port/healthz" "$tmp/litegate-none.log"
}
start_nchan() { # nginx + nchan: one worker, memory store, a message buffer, EventSource
  ngx_port=$(free_port)
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections $((nofile > 120000 ? 120000 : nofile - 100)); use epoll; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  nchan_max_reserved_memory 1024M;
  server {
    listen 127.0.0.1:$ngx_port backlog=4096;
    location = /healthz { return 200 "ok"; }
    location ~ ^/pub/(.+)\$ {
      nchan_publisher http;
      nchan_channel_id \$1;
      nchan_message_buffer_length 1000;
      nchan_message_timeout 120s;
    }
    location ~ ^/sub/(.+)\$ {
      nchan_subscriber eventsource;
      nchan_channel_id \$1;
      nchan_subscriber_first_message oldest;
      nchan_message_buffer_length 1000;
      nchan_message_timeout 120s;
    }
  }
}
EOF
  "$NGINX" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" -e "$tmp/nginx/error.log" >>"$tmp/nginx/out.log" 2>&1 &
  ngx_pid=$!
  wait_http "http://127.0.0.1:$ngx_port/healthz" "$tmp/nginx/error.log"
  ngx_worker=
  for _ in $(seq 50); do
    ngx_worker=$(pgrep -P "$ngx_pid" | head -1) && [ -n "$ngx_worker" ] && break
    sleep 0.1
  done
  [ -n "$ngx_worker" ] || { echo "no nginx worker" >&2; cat "$tmp/nginx/error.log" >&2; exit 1; }
}
stop_servers() { # litegate ends gracefully on SIGTERM, nginx on SIGQUIT
  local p
  for p in $lg_pid $ln_pid; do kill -TERM "$p" 2>/dev/null || true; done
  if [ -n "$ngx_pid" ]; then kill -QUIT "$ngx_pid" 2>/dev/null || true; fi
  for p in $lg_pid $ln_pid $ngx_pid; do wait "$p" 2>/dev/null || true; done
  lg_pid=; ln_pid=; ngx_pid=
}
start_servers() { # fresh processes: a memory figure must not reuse heap an earlier workload freed
  stop_servers
  start_litegate
  if [ "$DIAG_NONE" = 1 ]; then start_none; fi
  start_nchan
}

cmds=()
run() { # name server args...: runs loadgen, keeps its output in $tmp/name.server.out
  local name=$1 srv=$2
  shift 2
  local pid pu su
  local lg=/v1/topics/chatbot/s{r}-{n}
  case $srv in
    litegate) pid=$lg_pid pu=http://127.0.0.1:$lg_port$lg/messages su=http://127.0.0.1:$lg_port$lg/events ;;
    none) pid=$ln_pid pu=http://127.0.0.1:$ln_port$lg/messages su=http://127.0.0.1:$ln_port$lg/events ;;
    *) pid=$ngx_worker pu="http://127.0.0.1:$ngx_port/pub/s{r}-{n}" su="http://127.0.0.1:$ngx_port/sub/s{r}-{n}" ;;
  esac
  local out="$tmp/$name.$srv.out"
  echo "# $name on $srv" >&2
  "$LOADGEN" --pub-url "$pu" --sub-url "$su" --server-pid "$pid" --label "$name.$srv" "$@" >"$out" 2>"$out.err" || true
  grep -v '^RESULT' "$out" | sed 's/^/  /' >&2
  cmds+=("$(head -1 "$out" | sed 's/^# command: //')")
}
val() { # name.server kind key
  awk -v l="label=$1" -v k="kind=$2" -v key="$3" '
    $1 == "RESULT" { hl = 0; hk = 0; for (i = 2; i <= NF; i++) { if ($i == l) hl = 1; if ($i == k) hk = 1 }
      if (hl && hk) for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) v = kv[2] } }
    END { print (v == "" ? "-" : v) }' "$tmp"/*.out
}

load_start=$(cat /proc/loadavg)
echo "# $(date -u +%FT%TZ) $(nproc) cores; load average $load_start; nofile $nofile" >&2

# 1. memory per idle SSE connection, each count on freshly started servers
start_servers
for srv in litegate nchan; do run idle "$srv" --sessions 0 --idle-subs "$IDLE" --duration 1; done
big=0 big_note= idle_wanted=$IDLE_BIG
if [ "$IDLE_BIG" -gt 0 ]; then
  if [ "$nofile" -lt $((IDLE_BIG + 2000)) ]; then
    # Each side needs its own descriptors, and raising the hard limit needs CAP_SYS_RESOURCE:
    # measure the largest round number that fits instead.
    big_note="$IDLE_BIG idle connections need $((IDLE_BIG + 2000)) descriptors per process; the hard limit here is $nofile"
    IDLE_BIG=$(((nofile - 2000) / 1000 * 1000))
    echo "# $big_note: measuring $IDLE_BIG instead" >&2
  fi
  if [ "$IDLE_BIG" -gt "$IDLE" ]; then
    big=1
    start_servers
    for srv in litegate nchan; do run idlebig "$srv" --sessions 0 --idle-subs "$IDLE_BIG" --duration 1; done
  fi
fi
start_servers
echo "# litegate pid $lg_pid port $lg_port; nginx worker $ngx_worker port $ngx_port" >&2
# 2. 1,000 sessions at 20 tokens/s each (20,000 msg/s), one POST per token
servers=(litegate nchan)
[ "$DIAG_NONE" = 1 ] && servers+=(none)
for srv in "${servers[@]}"; do
  run steady "$srv" --sessions "$SESSIONS" --rate "$RATE" --duration "$DURATION" --publishers "$PUBLISHERS"
done
# 3. resume: every subscriber drops once for ~1 s and comes back with Last-Event-ID
for srv in litegate nchan; do
  run resume "$srv" --sessions "$SESSIONS" --rate "$RESUME_RATE" --duration "$DURATION" --publishers "$PUBLISHERS" --resume
done
# 4. publish rate, closed loop: one POST per token, and (litegate) one streamed NDJSON POST per session
for srv in "${servers[@]}"; do
  run postmax "$srv" --sessions "$SESSIONS" --rate 0 --duration "$DURATION" --publishers "$PUBLISHERS"
done
run ndjson litegate --sessions "$SESSIONS" --rate 0 --duration "$DURATION" --ndjson
# 5. ramp: highest rate held with p99 < 50 ms and nothing lost
for srv in litegate nchan; do
  run ramp "$srv" --sessions "$SESSIONS" --rate "$RAMP_START" --ramp --ramp-factor "$RAMP_FACTOR" \
    --duration "$RAMP_STEP_S" --publishers "$PUBLISHERS" --drain-s 3
done
load_end=$(cat /proc/loadavg)

# ---- the table ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "${4:--}"; }
kb() { awk -v v="$1" 'BEGIN { if (v == "-" || v < 0) print "-"; else printf "%.0f", v }'; }
echo
echo "## litegate vs nginx+nchan, $(date -u +%F), $(nproc) cores, load average $load_start at start, $load_end at end"
echo
echo "| figure | litegate (fsync) | nchan (memory store) | litegate / nchan | litegate, durability none (diagnostic) |"
echo "|---|---|---|---|---|"
for k in p50_us p99_us p999_us; do
  row "$RATE msg/s, $SESSIONS sessions: delivery latency ${k%_us} (us)" "$(val steady.litegate run $k)" "$(val steady.nchan run $k)" "$(val steady.none run $k)"
done
row "$RATE msg/s: achieved publish rate (msg/s)" "$(val steady.litegate run achieved)" "$(val steady.nchan run achieved)" "$(val steady.none run achieved)"
row "$RATE msg/s: lost / duplicated / reordered" \
  "$(val steady.litegate run lost)/$(val steady.litegate run dup)/$(val steady.litegate run reord)" \
  "$(val steady.nchan run lost)/$(val steady.nchan run dup)/$(val steady.nchan run reord)"
row "$RATE msg/s: server CPU (% of one core)" "$(val steady.litegate run cpu)" "$(val steady.nchan run cpu)" "$(val steady.none run cpu)"
row "$RATE msg/s: server RSS after (kB)" "$(val steady.litegate run rss_kb)" "$(val steady.nchan run rss_kb)" "$(val steady.none run rss_kb)"
row "ramp: highest rate held, p99 < 50 ms, nothing lost (msg/s)" "$(val ramp.litegate ramp held_rate)" "$(val ramp.nchan ramp held_rate)"
row "ramp: first rate that failed (msg/s)" "$(val ramp.litegate ramp first_failed)" "$(val ramp.nchan ramp first_failed)"
row "$IDLE idle SSE connections: bytes per connection (RSS delta)" "$(kb "$(val idle.litegate idle bytes_per_conn)")" "$(kb "$(val idle.nchan idle bytes_per_conn)")"
if [ "$big" = 1 ]; then
  row "$IDLE_BIG idle SSE connections: bytes per connection" "$(kb "$(val idlebig.litegate idle bytes_per_conn)")" "$(kb "$(val idlebig.nchan idle bytes_per_conn)")"
  row "$IDLE_BIG idle SSE connections: up" "$(val idlebig.litegate idle up)" "$(val idlebig.nchan idle up)"
fi
[ -n "$big_note" ] && echo "| $idle_wanted idle SSE connections | not run: $big_note | | | |"
row "resume ($RESUME_RATE msg/s, all subscribers drop ~1 s): lost" "$(val resume.litegate resume lost)" "$(val resume.nchan resume lost)"
row "resume: duplicated" "$(val resume.litegate resume dup)" "$(val resume.nchan resume dup)"
row "resume: subscribers resumed" "$(val resume.litegate resume resumes)" "$(val resume.nchan resume resumes)"
row "closed loop, one POST per message: publish rate (msg/s)" "$(val postmax.litegate run achieved)" "$(val postmax.nchan run achieved)" "$(val postmax.none run achieved)"
row "closed loop, one POST per message: server CPU (% of one core)" "$(val postmax.litegate run cpu)" "$(val postmax.nchan run cpu)" "$(val postmax.none run cpu)"
printf '| closed loop, one chunked NDJSON POST per session: publish rate (msg/s) | %s | n/a | %s x litegate POST | - |\n' \
  "$(val ndjson.litegate run achieved)" "$(ratio "$(val ndjson.litegate run achieved)" "$(val postmax.litegate run achieved)")"
echo
echo "Commands (servers, restarted fresh before each idle-memory count and before the other workloads:"
echo "litegate --listen 127.0.0.1:PORT --data-dir TMP/data with conf/litegate.json,"
if [ "$DIAG_NONE" = 1 ]; then
  echo "litegate --config TMP/none.json (the same with \"durability\": \"none\") --listen 127.0.0.1:PORT,"
fi
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') with libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null), config below):"
echo
for c in "${cmds[@]}"; do echo "    $c"; done
echo
echo "nginx.conf:"
echo
sed 's/^/    /' "$tmp/nginx/nginx.conf"
if [ -s "$tmp/litegate.log" ]; then
  echo
  echo "litegate log (warnings and errors):"
  tail -20 "$tmp/litegate.log" | sed 's/^/    /'
fi
