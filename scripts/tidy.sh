#!/usr/bin/env bash
# clang-tidy over the given files (default: every .cc under core/ api/ algorithms/), using the
# default build's compile commands without GCC's precompiled header, which clang cannot read.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f build/compile_commands.json ]] || { echo "configure first: cmake --preset default"; exit 2; }
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
python3 - build/compile_commands.json "$db/compile_commands.json" <<'PY'
import json, re, sys
cmds = json.load(open(sys.argv[1]))
for c in cmds:
    c["command"] = re.sub(r"-include \S+cmake_pch\.hxx|-Winvalid-pch", "", c["command"])
json.dump(cmds, open(sys.argv[2], "w"))
PY
files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then mapfile -t files < <(git ls-files 'core/*.cc' 'api/*.cc' 'algorithms/*.cc'); fi
status=0
for f in "${files[@]}"; do
  out=$(clang-tidy -p "$db" --quiet "$f" 2>/dev/null | grep -E "^$PWD/.*(warning|error):" || true)
  if [[ -n "$out" ]]; then echo "$out"; status=1; fi
done
exit $status
