#!/usr/bin/env bash
# README command 1: the default FedAvg simulation (Fashion-MNIST, cnn, 100 non-IID clients).
# Installs what is missing, builds the `fedml` program only (the test command builds the tests and
# benchmarks), runs. Extra arguments go to `fedml simulate`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh default fedml_cli
exec build/bin/fedml simulate --cf examples/fedavg_fashion_mnist.yaml "$@"
