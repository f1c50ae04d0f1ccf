#!/usr/bin/env bash
# Mask generation against the machine's own AES-256-CTR (goal: >= 0.5 of `openssl
# speed`), then the secure-aggregation benchmark.
#
#   benchmarks/secagg/run.sh [path/to/secagg_bench] [secagg_bench flags...]
#
# The binary defaults to build/bin/secagg_bench; a first argument starting with "--" is taken as
# a flag. openssl speed reports 1000s of bytes per second for 4 MiB buffers (the masks' size);
# secagg_bench gets the figure as --openssl_kbps and prints the ratio mask_gen / openssl itself.
# openssl speed divides by user CPU time (no -elapsed), so the bench compares per CPU second too.
set -euo pipefail

bench=build/bin/secagg_bench
if [[ $# -gt 0 && "$1" != --* ]]; then
  bench=$1
  shift
fi
if [[ ! -x "$bench" ]]; then
  echo "run.sh: $bench is not an executable (build the secagg_bench target first)" >&2
  exit 2
fi
if ! command -v openssl > /dev/null; then
  echo "run.sh: openssl not found on PATH" >&2
  exit 2
fi

# `timeout` bounds the run: -seconds 2 should take ~2 s plus start-up.
speed_out=$(timeout 60 openssl speed -evp aes-256-ctr -bytes 4194304 -seconds 2 2> /dev/null)
kbps=$(printf '%s\n' "$speed_out" |
  awk 'toupper($1) == "AES-256-CTR" { v = $NF } END { sub(/k$/, "", v); print v }')
if [[ -z "$kbps" ]]; then
  echo "run.sh: cannot find the AES-256-CTR figure in openssl speed's output:" >&2
  printf '%s\n' "$speed_out" >&2
  exit 1
fi
echo "openssl speed -evp aes-256-ctr -bytes 4194304 -seconds 2: ${kbps}k (1000s of bytes/s)"
exec "$bench" --openssl_kbps "$kbps" "$@"
