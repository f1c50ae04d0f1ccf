#!/usr/bin/env bash
# Time per round of the default FedAvg run (Fashion-MNIST, cnn, 100 hetero clients, 10 per
# round) against a plain PyTorch FedAvg loop doing the same work on the same cores, in one run.
#   benchmarks/round_time.sh [ROUNDS]      (default 3; goal: ratio <= 0.6)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
FEDML_SETUP_BENCHMARKS=1 scripts/setup.sh >/dev/null
scripts/build.sh default >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=examples/fedavg_fashion_mnist.yaml
build/bin/fedml partition --cf "$cfg" --comm_round "$rounds" --plan_file "$work/plan.json" >/dev/null
echo "fedml simulate, $rounds rounds:"
build/bin/fedml simulate --cf "$cfg" --comm_round "$rounds" --metrics_file "$work/fedml.jsonl" \
  --model_file_cache_folder "" | sed 's/^/  /'
echo "plain PyTorch FedAvg loop (PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $(nproc) threads), $rounds rounds:"
/usr/bin/python3 benchmarks/pytorch_fedavg_baseline.py --plan "$work/plan.json" --rounds "$rounds" \
  --out "$work/torch.jsonl" | sed 's/^/  /'
/usr/bin/python3 benchmarks/round_time_ratio.py "round time" 0.6 "$work/fedml.jsonl" \
  "$work/torch.jsonl"
