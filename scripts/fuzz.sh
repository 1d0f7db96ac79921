#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan, in build-fuzz/) and runs each
# for a bounded time. A crash, a broken invariant, a leak, a timeout or running out of memory fails
# the run; the input that did it is saved to tests/fuzz/regressions/<target>/, where ctest replays
# it in every build from then on (commit it with the fix). See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   default: 20 seconds for each of route chunked json pubparse wsproto config cl jwt headcheck xff
#   wsmask h2tap h2preface settleparse (about 5 minutes with the build). FUZZ_BUILD_JOBS sets the
#   build's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

all=(route chunked json pubparse wsproto config cl jwt headcheck xff wsmask h2tap h2preface settleparse)
secs=${1:-20}
case "$secs" in
  ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
    echo "fuzz: unknown target '$t' (known: ${all[*]})" >&2
    exit 2
  fi
done

scripts/deps.sh test # clang and libclang-rt-14-dev (libFuzzer's runtime)

echo "== build-fuzz: clang, -fsanitize=fuzzer,address,undefined"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLITEGATE_FUZZ=ON -DSANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j "${FUZZ_BUILD_JOBS:-2}" --target fuzz_all

mkdir -p build-fuzz/fuzz-logs
# Scratch space for targets that write files (cl writes log segments): in RAM when possible, and
# removed at the end even when a crash kept a target from cleaning up after itself.
LITEGATE_FUZZ_TMPDIR=$(mktemp -d -p /dev/shm litegate-fuzz.XXXXXX 2>/dev/null || mktemp -d)
export LITEGATE_FUZZ_TMPDIR
trap 'rm -rf "$LITEGATE_FUZZ_TMPDIR"' EXIT
failed=()
for t in "${targets[@]}"; do
  # New inputs go to the first directory only: a work corpus in build-fuzz that keeps growing from
  # run to run. The committed corpus and the regressions are read, never written.
  work=build-fuzz/fuzz-corpus/$t
  regress=tests/fuzz/regressions/$t
  log=build-fuzz/fuzz-logs/$t.log
  mkdir -p "$work" "$regress"
  dirs=("$work" "tests/fuzz/corpus/$t")
  [ -n "$(ls -A "$regress")" ] && dirs+=("$regress")
  before=$(ls -A "$regress")
  echo "== fuzz_$t: ${secs}s"
  if ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$regress/" -print_final_stats=1 "${dirs[@]}" >"$log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "$log" || true
  else
    failed+=("$t")
    echo "fuzz_$t FAILED (full log: $log):" >&2
    grep -E 'invariant failed|ERROR: |SUMMARY: |Test unit written' "$log" | head -n 8 >&2 ||
      tail -n 30 "$log" >&2
    new=$(comm -13 <(echo "$before") <(ls -A "$regress") || true)
    for f in $new; do
      echo "  saved: $regress/$f  (replay: build-fuzz/tests/fuzz/fuzz_$t $regress/$f)" >&2
    done
  fi
done
# An empty regressions directory is not a change worth showing in git status.
rmdir tests/fuzz/regressions/* 2>/dev/null || true

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no failures"
