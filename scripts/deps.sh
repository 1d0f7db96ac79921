#!/usr/bin/env bash
# Installs the Debian 12 packages litegate needs to build, run and test, if any is missing.
# Usage: scripts/deps.sh [build|test|bench]   (each level includes the ones before it)
set -euo pipefail
level=${1:-build}
pkgs=(build-essential cmake ninja-build pkg-config curl librocksdb-dev libwebsockets-dev libwebsockets-evlib-ev
      libev-dev libjansson-dev libssl-dev libnghttp2-dev libcurl4-openssl-dev)
case "$level" in
  test|bench) pkgs+=(libcmocka-dev python3 curl clang libclang-rt-14-dev openssl) ;; # openssl: test keys and certs
esac
case "$level" in
  bench) pkgs+=(redis-server redis-tools) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
