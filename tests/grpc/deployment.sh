#!/usr/bin/env bash
# `fedml server` and 4 `fedml client` processes on loopback, over TLS with certificates from
# `fedml certs`: the per-round test accuracy equals the in-process simulation's; a resumed server
# ends with the same model as an uninterrupted one; bad credentials are refused on both sides.
#   deployment.sh FEDML_BINARY WORKDIR
set -uo pipefail
fedml="$1"; work="$2"
rm -rf "$work"; mkdir -p "$work"; cd "$work" || exit 1
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in *.log; do echo "== $f"; tr '\r' '\n' < "$f" | tail -20; done; exit 1; }

common=(--dataset synthetic --model lr --client_num_in_total 4 --client_num_per_round 4
        --random_seed 7 --round_timeout_s 60)
"$fedml" certs --out certs --clients 4 > certs.log || fail "fedml certs"
"$fedml" certs --out other_ca --clients 4 > other_ca.log || fail "fedml certs (second CA)"

# Starts a server in the background; sets $port and $server_pid once it listens (tail -f wakes
# on each new line of its log, so nothing sleeps).
start_server() {
  local log="$1"; shift
  timeout 300 "$fedml" server "${common[@]}" --port 0 "$@" > "$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  port=$(timeout 60 tail -n +1 -f "$log" | grep -m1 -o "listening on [^ ]*" | sed 's/.*://')
  [[ -n "$port" ]] || fail "server did not start"
}
run_clients() {  # run_clients TAG EXTRA... ; waits for all four
  local tag="$1"; shift
  local cpids=()
  for c in 0 1 2 3; do
    timeout 300 "$fedml" client "${common[@]}" --server "localhost:$port" --client_id "$c" \
      --certs certs "$@" > "client$c.$tag.log" 2>&1 &
    cpids+=($!)
  done
  for p in "${cpids[@]}"; do wait "$p" || fail "a client of run $tag exited with $?"; done
}

# 1. Three rounds over TLS (client tokens), same accuracy as the simulation.
start_server tls.log --certs certs --min_clients 4 --comm_round 3 --metrics_file tls.jsonl \
  --model_file_cache_folder full --checkpoint_dir ck_full
run_clients tls
wait "$server_pid" || fail "TLS server exited with $?"
"$fedml" simulate "${common[@]}" --comm_round 3 --worker_num 4 --metrics_file sim.jsonl \
  --model_file_cache_folder "" > sim.log 2>&1 || fail "simulation"
a=$(grep -o '"test_accuracy":[^,]*' sim.jsonl); b=$(grep -o '"test_accuracy":[^,]*' tls.jsonl)
[[ "$a" == "$b" && $(wc -l < tls.jsonl) -eq 3 ]] || fail "accuracies differ: sim [$a] grpc [$b]"
echo "TLS: 3 rounds with 4 clients, per-round test_accuracy equals the simulation's"

# 2. Mutual TLS; the server stops after round 2, then resumes from its checkpoint.
start_server mtls1.log --certs certs --mtls --min_clients 4 --comm_round 2 --checkpoint_dir ck \
  --model_file_cache_folder ""
run_clients mtls1 --mtls
wait "$server_pid" || fail "mTLS server exited with $?"
start_server mtls2.log --certs certs --mtls --min_clients 4 --comm_round 3 --checkpoint_dir ck \
  --resume --model_file_cache_folder resumed
run_clients mtls2 --mtls
wait "$server_pid" || fail "resumed server exited with $?"
grep -q "resuming after round 2" mtls2.log || fail "no resume message"
cmp -s full/final_model.pt resumed/final_model.pt || fail "resumed final model differs"
echo "mTLS: stopped after round 2 and resumed: the final model equals the uninterrupted run's"

# 3. Refusals: each client must fail fast with a clear message; the server keeps serving.
start_server refuse.log --certs certs --mtls --min_clients 4 --comm_round 1 \
  --model_file_cache_folder ""
refused() {  # refused NAME PATTERN ARGS...
  local name="$1" pattern="$2"; shift 2
  if timeout 120 "$fedml" client "${common[@]}" --round_timeout_s 5 --server "localhost:$port" \
      --client_id 0 "$@" > "$name.log" 2>&1; then
    fail "$name was accepted"
  fi
  grep -Eq "$pattern" "$name.log" || fail "$name: no clear error"
  echo "refused: $name ($(grep -m1 error "$name.log" | cut -c1-150))"
}
refused other_ca "registering with .* (no connection|refused)" --certs other_ca --mtls
refused no_client_cert "registering with .* (no connection|refused)" --certs certs
refused insecure_vs_tls "registering with .* (no connection|refused)" --insecure
kill -0 "$server_pid" 2>/dev/null || fail "the server died after the refusals"
run_clients refuse_ok --mtls   # the server still serves the real clients
wait "$server_pid" || fail "server exited with $? after refusals"
echo "the server served its clients after refusing the three"

# 4. A revoked client (token authentication, no mTLS) is refused and told why.
echo 2 >> certs/revoked.txt
start_server revoked.log --certs certs --min_clients 1 --comm_round 1 --model_file_cache_folder ""
if timeout 60 "$fedml" client "${common[@]}" --server "localhost:$port" --client_id 2 \
    --certs certs > revoked_client.log 2>&1; then
  fail "revoked client accepted"
fi
grep -q "client 2 is revoked" revoked_client.log || fail "revoked client: no reason given"
grep -q "revoked" revoked.log || fail "server did not log the revoked client"
timeout 60 "$fedml" client "${common[@]}" --server "localhost:$port" --client_id 1 \
  --certs certs > ok_client.log 2>&1 || fail "client 1 after the revoked one"
wait "$server_pid" || fail "server after revocation"
echo "revoked client 2 refused on both sides; client 1 served"
