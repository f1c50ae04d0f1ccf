#!/usr/bin/env bash
# Configures (once) and builds a preset, all of it or the targets named after it:
#   scripts/build.sh [default|sanitize|minimal|fuzz] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$preset" in
  default) dir=build ;;
  *) dir="build-$preset" ;;
esac
if [[ ! -f "$dir/build.ninja" ]]; then cmake --preset "$preset"; fi
cmake --build --preset "$preset" "${targets[@]}"
