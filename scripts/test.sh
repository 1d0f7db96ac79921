#!/usr/bin/env bash
# Builds and runs every test: the warnings-as-errors build, then the same tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then the real-browser test of the demo, then
# the libFuzzer targets for a bounded time. Installs missing Debian packages first.
# Usage: scripts/test.sh [--no-asan] [--no-browser] [--no-fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
asan=1 browser=1 fuzz=1
for a in "$@"; do
  case "$a" in
    --no-asan) asan=0 ;;
    --no-browser) browser=0 ;;
    --no-fuzz) fuzz=0 ;;
    *) echo "usage: scripts/test.sh [--no-asan] [--no-browser] [--no-fuzz]" >&2; exit 2 ;;
  esac
done
scripts/deps.sh test
jobs=$(nproc)

# The gateway talks to storage only through engine/include/engine.h (the seam a second backend
# will implement): it may include nothing from engine/src.
if grep -rnE '#include ".*(engine/src|engine_int\.h|cl\.h|idx\.h)' gateway/; then
  echo "gateway/ includes engine internals: use engine/include/engine.h only" >&2
  exit 1
fi

echo "== build (-Wall -Wextra -Werror) and test"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j 2

if [ "$asan" = 1 ]; then
  echo "== build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j 2
fi

if [ "$browser" = 1 ] && [ -x tests/browser/run.sh ]; then
  echo "== browser test (headless Chromium)"
  LITEGATE_BIN="$PWD/build/gateway/litegate" tests/browser/run.sh
fi

if [ "$fuzz" = 1 ]; then
  echo "== fuzz every parser of outside input for a bounded time (crashers go to tests/fuzz/regressions)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi
