#!/usr/bin/env bash
# The field's published benchmark shapes, each timed against a plain PyTorch FedAvg loop doing the
# same work (same clients, samples, model, batch size and per-round evaluation) on the same cores,
# in one run (benchmarks/pytorch_fedavg_baseline.py replays fedml's partition plan):
#   cifar_pfl      pfl-research's CIFAR-10 shape: 1000 clients x 50 images (CIFAR-shaped synthetic
#                  images, since CIFAR is not packaged), 50 per round, batch 10, 1 epoch, its CNN
#   mnist_lr_flute FLUTE's MNIST-LR shape on Fashion-MNIST: 1000 clients, 10 per round, `lr`
#   lstm           LEAF's Shakespeare LSTM on 80-letter sequences: 100 clients x 100, 10 per round
#   resnet20       the CIFAR ResNet-20 on CIFAR-shaped images: 10 per round of the 1000 clients
# Per-client-overhead shapes (cifar_pfl, mnist_lr_flute): goal <= 0.5 of the loop's time.
# Kernel-bound shapes (lstm, resnet20): goal <= 1.0.
#   benchmarks/workloads/run.sh [ROUNDS] [SHAPE...]   (default 3 rounds, all shapes)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"; shift || true
shapes=("$@"); [[ ${#shapes[@]} -gt 0 ]] || shapes=(cifar_pfl mnist_lr_flute lstm resnet20)
FEDML_SETUP_BENCHMARKS=1 scripts/setup.sh >/dev/null
scripts/build.sh default >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3

# CIFAR-shaped images (3 x 32 x 32, float32, normal) with 10 classes, 1000 clients x 50, and
# 80-letter sequences over an 80-letter vocabulary, 100 clients x 100.
"$py" - "$work" <<'PY'
import sys, numpy as np
w = sys.argv[1]; rng = np.random.default_rng(0)
import os
os.makedirs(f"{w}/cifar"); os.makedirs(f"{w}/text")
np.save(f"{w}/cifar/x_train.npy", rng.standard_normal((50000, 3, 32, 32), dtype=np.float32))
np.save(f"{w}/cifar/y_train.npy", rng.integers(0, 10, 50000))
np.save(f"{w}/cifar/client_train.npy", np.repeat(np.arange(1000), 50))
np.save(f"{w}/cifar/x_test.npy", rng.standard_normal((2000, 3, 32, 32), dtype=np.float32))
np.save(f"{w}/cifar/y_test.npy", rng.integers(0, 10, 2000))
np.save(f"{w}/text/x_train.npy", rng.integers(0, 80, (10000, 80)).astype(np.int64))
np.save(f"{w}/text/y_train.npy", rng.integers(0, 80, 10000))
np.save(f"{w}/text/client_train.npy", np.repeat(np.arange(100), 100))
np.save(f"{w}/text/x_test.npy", rng.integers(0, 80, (1000, 80)).astype(np.int64))
np.save(f"{w}/text/y_test.npy", rng.integers(0, 80, 1000))
PY

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores;" \
     "PyTorch $("$py" -c 'import torch; print(torch.__version__)')"
for shape in "${shapes[@]}"; do
  # Each shape: its data (fedml's flags and the loop's), model, clients, batch and rate.
  bs=10
  case "$shape" in
    cifar_pfl) data=(--dataset npy --data_cache_dir "$work/cifar" --partition_method natural)
               base=(--npy_dir "$work/cifar"); model=cnn_cifar; total=1000; per=50; lr=0.01
               goal=0.5 ;;
    mnist_lr_flute) data=(--dataset fashion_mnist --partition_method homo); base=()
                    model=lr; total=1000; per=10; lr=0.05; goal=0.5 ;;
    lstm) data=(--dataset npy --data_cache_dir "$work/text" --partition_method natural)
          base=(--npy_dir "$work/text"); model=lstm_shakespeare; total=100; per=10; lr=0.5
          goal=1.0 ;;
    resnet20) data=(--dataset npy --data_cache_dir "$work/cifar" --partition_method natural)
              base=(--npy_dir "$work/cifar"); model=resnet20; total=1000; per=10; lr=0.05
              goal=1.0 ;;
    *) echo "unknown shape $shape"; exit 2 ;;
  esac
  common=("${data[@]}" --model "$model" --client_num_in_total "$total"
          --client_num_per_round "$per" --batch_size "$bs" --learning_rate "$lr" --epochs 1
          --comm_round "$rounds" --random_seed 1)
  build/bin/fedml partition "${common[@]}" --plan_file "$work/plan.json" >/dev/null
  build/bin/fedml simulate "${common[@]}" --metrics_file "$work/fedml.jsonl" \
    --model_file_cache_folder "" >/dev/null
  "$py" benchmarks/pytorch_fedavg_baseline.py --plan "$work/plan.json" --rounds "$rounds" \
    --model "$model" --lr "$lr" --batch_size "$bs" "${base[@]}" --out "$work/torch.jsonl" >/dev/null
  "$py" benchmarks/round_time_ratio.py "$shape" "$goal" "$work/fedml.jsonl" "$work/torch.jsonl"
done
