#!/usr/bin/env bash
# Installs fedml-cpp's build and run dependencies from Debian 12's own packages. Idempotent: it
# installs only what is missing, and does nothing (not even apt-get update) when all is there.
# Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp
  libopenmpi-dev openmpi-bin
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libeigen3-dev libssl-dev zlib1g-dev libyaml-cpp-dev
  catch2 libcli11-dev libbenchmark-dev
  clang libclang-rt-14-dev
  dataset-fashion-mnist
)
# libopenblas0-openmp: LibTorch's matrix products otherwise run on the reference BLAS, about 3x
# slower for the built-in models; the OpenMP build follows LibTorch's per-thread thread count.
# python3-torch (the same 1.13 build as libtorch-dev): the tests export TorchScript models with
# it, and the benchmarks compare against a plain PyTorch loop; the run command needs neither.
# iproute2: the aggregation-tier test puts its processes in network namespaces (`ip netns`).
if [[ "${FEDML_SETUP_BENCHMARKS:-0}" == 1 || "${FEDML_SETUP_TESTS:-0}" == 1 ]]; then
  PACKAGES+=(python3-torch)
fi
if [[ "${FEDML_SETUP_TESTS:-0}" == 1 ]]; then
  PACKAGES+=(iproute2)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
