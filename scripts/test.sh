#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs the whole test suite under ctest:
# the release build; the `minimal` build (LibTorch without MPI and gRPC, as on a GPU box that lacks
# them) with the command-line tests against its `fedml`; then the bounded libFuzzer run of the
# wire decoder. With --sanitize it also builds and runs the suite under AddressSanitizer +
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
FEDML_SETUP_TESTS=1 scripts/setup.sh
scripts/build.sh default
ctest --preset default -j2
scripts/build.sh minimal
build-minimal/bin/api_tests "[cli]"
scripts/build.sh fuzz
ctest --test-dir build-fuzz --output-on-failure
if [[ "${1:-}" == "--sanitize" ]]; then
  scripts/build.sh sanitize
  ctest --preset sanitize -j2
fi
