#!/usr/bin/env bash
# Configures (once) and builds a preset: scripts/build.sh [default|sanitize|minimal|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
case "$preset" in
  default) dir=build ;;
  *) dir="build-$preset" ;;
esac
if [[ ! -f "$dir/build.ninja" ]]; then cmake --preset "$preset"; fi
cmake --build --preset "$preset"
