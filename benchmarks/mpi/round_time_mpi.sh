#!/usr/bin/env bash
# The default config's time per round under `mpirun -np 3` (server + 2 worker processes) against
# the in-process backend with 2 worker threads, on the same machine, in one run.
#   benchmarks/mpi/round_time_mpi.sh [ROUNDS]     (default 3; goal: ratio <= 1.1)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
scripts/setup.sh >/dev/null
scripts/build.sh default >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cfg=examples/fedavg_fashion_mnist.yaml
args=(--cf "$cfg" --comm_round "$rounds" --model_file_cache_folder "")
build/bin/fedml simulate "${args[@]}" --worker_num 2 --metrics_file "$work/inproc.jsonl" >/dev/null
mpirun --oversubscribe -np 3 build/bin/fedml simulate "${args[@]}" --backend MPI \
  --metrics_file "$work/mpi.jsonl" >/dev/null
/usr/bin/python3 - "$work/inproc.jsonl" "$work/mpi.jsonl" <<'PY'
import json, sys
def load(p): return [json.loads(l) for l in open(p)]
a, b = load(sys.argv[1]), load(sys.argv[2])
same = all(x["test_accuracy"] == y["test_accuracy"] for x, y in zip(a, b))
ta = sum(r["wall_seconds"] for r in a) / len(a)
tb = sum(r["wall_seconds"] for r in b) / len(b)
print(f"round time: mpirun -np 3 {tb:.2f} s, in-process 2 workers {ta:.2f} s, ratio {tb / ta:.3f} "
      f"(goal <= 1.1: {'PASS' if tb / ta <= 1.1 else 'MISS'}); same accuracies: {same}")
PY
