#!/usr/bin/env bash
# The GPU benchmark in one run: builds fedml-cpp against the CUDA LibTorch found on
# this machine, runs gpu_bench (parity with the CPU path after 3 rounds, clients trained per second
# on the GPU against the CPU path, aggregation on the GPU against device-to-device copy bandwidth)
# and samples the GPU's utilisation with nvidia-smi during each phase of 1, 2, 4 and 8 concurrent
# workers.
#
#   benchmarks/gpu/run.sh [gpu_bench flags...]        e.g. --device cuda:1 --model resnet18_gn
#
# Environment:
#   TORCH_PREFIX   the folder holding share/cmake/Torch (default: PyTorch's own LibTorch,
#                  python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
#   BUILD_DIR      where to build (default build-gpu)
#   OUT_DIR        where the log and the utilisation samples go (default $BUILD_DIR/gpu_bench)
#   FEDML_WITH_MPI, FEDML_WITH_GRPC   ON to build those backends too (default OFF: not needed
#                  here, and a GPU box may lack them)
#
# The LibTorch must use the C++11 ABI (LibTorch's "cxx11 ABI" archives, PyTorch wheels from 2.7),
# as Debian's libraries that fedml-cpp links do; docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

prefix=${TORCH_PREFIX:-}
if [[ -z "$prefix" ]]; then
  if ! prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2> /dev/null); then
    echo "run.sh: no CUDA LibTorch given (TORCH_PREFIX) and python3 cannot import torch" >&2
    exit 2
  fi
fi
if [[ ! -d "$prefix/Torch" && ! -d "$prefix/share/cmake/Torch" ]]; then
  echo "run.sh: $prefix holds no Torch CMake package (Torch/ or share/cmake/Torch/)" >&2
  exit 2
fi
build=${BUILD_DIR:-build-gpu}
out=${OUT_DIR:-$build/gpu_bench}
mkdir -p "$out"

echo "== building against $prefix into $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DFEDML_WITH_MPI="${FEDML_WITH_MPI:-OFF}" -DFEDML_WITH_GRPC="${FEDML_WITH_GRPC:-OFF}" \
  -DFEDML_BUILD_TESTS=OFF -DFEDML_BUILD_EXAMPLES=OFF > "$out/configure.log"
cmake --build "$build" --target gpu_bench fedml_cli -j"$(nproc)" > "$out/build.log"

args=("$@")
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz &&
  ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]] &&
  [[ " ${args[*]}" != *" --dataset"* && " ${args[*]}" != *" --data_cache_dir"* ]]; then
  echo "run.sh: Debian's dataset-fashion-mnist is not installed; using --dataset synthetic" >&2
  args+=(--dataset synthetic)
fi

sampler=""
cleanup() {
  if [[ -n "$sampler" ]]; then
    kill "$sampler" 2> /dev/null || true
    wait "$sampler" 2> /dev/null || true
  fi
}
trap cleanup EXIT
gpu_index=0
for ((i = 0; i < ${#args[@]}; ++i)); do
  if [[ "${args[i]}" == --device && $((i + 1)) -lt ${#args[@]} ]]; then
    gpu_index=${args[i + 1]#cuda:}
  elif [[ "${args[i]}" == --device=* ]]; then
    gpu_index=${args[i]#--device=cuda:}
  fi
done
: > "$out/utilisation.log"
if command -v nvidia-smi > /dev/null; then
  # One sample per 100 ms, stamped with milliseconds since the epoch (bash's EPOCHREALTIME, no
  # fork per line) to match the phase windows gpu_bench prints.
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -i "$gpu_index" -lms 100 |
    while IFS= read -r line; do
      t=${EPOCHREALTIME/./}
      printf '%s %s\n' "$((t / 1000))" "$line"
    done > "$out/utilisation.log" &
  sampler=$!
else
  echo "run.sh: nvidia-smi not found: utilisation is not measured" >&2
fi

echo "== $build/bin/gpu_bench ${args[*]}"
status=0
timeout 3600 "$build/bin/gpu_bench" "${args[@]}" | tee "$out/gpu_bench.log" || status=$?
cleanup
sampler=""

if [[ -s "$out/utilisation.log" ]]; then
  echo "== GPU utilisation (nvidia-smi, mean of the 100 ms samples inside each phase)"
  awk '
    NR == FNR { t[NR] = $1; u[NR] = $2; n = NR; next }
    /^throughput device/ {
      for (i = 1; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
      s = 0; c = 0
      for (i = 1; i <= n; ++i) if (t[i] >= f["start_ms"] && t[i] <= f["end_ms"]) { s += u[i]; ++c }
      if (c) printf "utilisation workers=%s: %.0f%% (%d samples)\n", f["workers"], s / c, c
      else printf "utilisation workers=%s: no sample inside the phase\n", f["workers"]
    }' "$out/utilisation.log" "$out/gpu_bench.log" | tee "$out/utilisation.txt"
fi
echo "== logs in $out"
exit "$status"
