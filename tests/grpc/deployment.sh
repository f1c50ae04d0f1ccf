#!/usr/bin/env bash
# `fedml server` and 4 `fedml client` processes on loopback, over TLS with certificates from
# `fedml certs`: the per-round test accuracy equals the in-process simulation's; a client killed
# with SIGKILL mid-round costs only its update; a server killed after round 2 and resumed ends
# with the same model as an uninterrupted one, its clients reconnecting by themselves; bad
# credentials are refused on both sides.
#   deployment.sh FEDML_BINARY WORKDIR
set -uo pipefail
fedml="$1"; work="$2"
rm -rf "$work"; mkdir -p "$work"; cd "$work" || exit 1
pids=()
cleanup() { for p in "${pids[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in *.log; do echo "== $f"; tr '\r' '\n' < "$f" | tail -20; done; exit 1; }

# Enough local epochs that a client trains for a second or more: long enough to be killed mid-task,
# and a round outlasts the time a test needs to notice its predecessor ended.
common=(--dataset synthetic --model mlp --epochs 600 --client_num_in_total 4
        --client_num_per_round 4 --random_seed 7 --round_timeout_s 120)
cfg=("${common[@]}")
"$fedml" certs --out certs --clients 4 > certs.log || fail "fedml certs"
"$fedml" certs --out other_ca --clients 4 > other_ca.log || fail "fedml certs (second CA)"

# FILE's lines as they are written (tail -F wakes on each write, and waits for FILE to appear),
# for at most 120 s; as a process substitution nobody waits for it, and it holds none of the
# test's output open.
follow() { exec timeout 120 tail -n +1 -s 0.1 -F "$1" 2>/dev/null; }

# Starts a server in the background; sets $port and $server_pid once it listens (tail -f wakes
# on each new line of its log, so nothing sleeps).
# The config is "${cfg[@]}" (the common one unless a section sets another).
start_server() {
  local log="$1"; shift
  local port_arg=0
  if [[ "${*: -2:1}" == "--port_reuse" ]]; then port_arg="${*: -1}"; set -- "${@:1:$#-2}"; fi
  : > "$log"  # exists before tail -f opens it (tail gives up on a file that is not there yet)
  timeout 300 "$fedml" server "${cfg[@]}" --port "$port_arg" "$@" >> "$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  port=$(grep -m1 -o "listening on [^ ]*" <(follow "$log") | sed 's/.*://')
  [[ -n "$port" ]] || fail "server did not start"
}
# The one client that round 1 of "${cfg[@]}" samples (from the partition plan).
round1_client() {
  "$fedml" partition "${cfg[@]}" --comm_round 1 --plan_file "$1" > /dev/null 2>&1 ||
    fail "fedml partition"
  grep -o '"rounds": *\[\[[0-9]*' "$1" | grep -o '[0-9]*$'
}
# SIGKILL for a process started under `timeout` (the process itself, then the wrapper).
kill_hard() { pkill -KILL -P "$1"; kill -KILL "$1" 2>/dev/null; }

# Waits (without polling) until FILE has a line matching PATTERN; fails after 120 s.
await_line() {
  grep -m1 -q -- "$2" <(follow "$1") || fail "no '$2' in $1"
}
start_clients() {  # start_clients TAG EXTRA... ; sets client_pids
  local tag="$1"; shift
  client_pids=()
  for c in 0 1 2 3; do
    timeout 300 "$fedml" client "${common[@]}" --server "localhost:$port" --client_id "$c" \
      --certs certs "$@" > "client$c.$tag.log" 2>&1 &
    client_pids+=($!)
    pids+=($!)
  done
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
# Runs "${extra[@]}" (2 rounds) with a server and the four clients over TLS, then as a
# simulation, and fails unless both give the same per-round test accuracy. TAG names the files
# (TAG.log, TAG.jsonl, TAG_sim.jsonl); further arguments are the server's own flags.
# "${transport[@]}" (empty: TLS with tokens) goes to the server and the clients only.
transport=()
grpc_equals_simulation() {
  local tag="$1"; shift
  start_server "$tag.log" --certs certs --metrics_file "$tag.jsonl" --model_file_cache_folder "" \
    "$@" "${extra[@]}" "${transport[@]}"
  run_clients "$tag" "${extra[@]}" "${transport[@]}"
  wait "$server_pid" || fail "$tag: the server exited with $?"
  "$fedml" simulate "${common[@]}" "${extra[@]}" --worker_num 4 --metrics_file "${tag}_sim.jsonl" \
    --model_file_cache_folder "" > "${tag}_sim.log" 2>&1 || fail "$tag: the simulation failed"
  local a b
  a=$(grep -o '"test_accuracy":[^,]*' "${tag}_sim.jsonl")
  b=$(grep -o '"test_accuracy":[^,]*' "$tag.jsonl")
  [[ "$a" == "$b" && $(wc -l < "$tag.jsonl") -eq 2 ]] || fail "$tag: sim [$a] grpc [$b]"
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

# 2. A client killed with SIGKILL while it trains: the round (which started with all four)
#    finishes with the other three and aggregates them (min_clients 3).
start_server kill_client.log --certs certs --min_available_clients 4 --min_clients 3 \
  --comm_round 1 --metrics_file kill_client.jsonl --model_file_cache_folder ""
start_clients kill_client
await_line client3.kill_client.log "round 1: training"
kill_hard "${client_pids[3]}"
for c in 0 1 2; do wait "${client_pids[$c]}" || fail "client $c exited with $? after client 3 died"; done
wait "$server_pid" || fail "server exited with $? after client 3 was killed"
grep -q "round 1: trained" client3.kill_client.log && fail "client 3 was not killed mid-round"
grep -q '"round":1,.*"clients":3,"refused":0,"dropped":1' kill_client.jsonl ||
  fail "round 1 should have 3 updates and 1 dropped: $(head -1 kill_client.jsonl)"
echo "client 3 killed while training: the round finished with the other 3"

# 3. Mutual TLS; the server is killed with SIGKILL after round 2 and restarted with --resume on
#    the same port; the same client processes reconnect and the final model equals run 1's.
start_server mtls1.log --certs certs --mtls --min_clients 4 --comm_round 3 --checkpoint_dir ck \
  --model_file_cache_folder resumed
start_clients mtls --mtls
await_line mtls1.log "round 2/3  clients 4"
kill_hard "$server_pid"
wait "$server_pid" 2>/dev/null
grep -q "round 3/3" mtls1.log && fail "the server finished round 3 before it was killed"
start_server mtls2.log --certs certs --mtls --min_clients 4 --comm_round 3 --checkpoint_dir ck \
  --resume --model_file_cache_folder resumed --port_reuse "$port"
for c in 0 1 2 3; do wait "${client_pids[$c]}" || fail "client $c exited with $? across the restart"; done
wait "$server_pid" || fail "resumed server exited with $?"
grep -q "resuming after round 2" mtls2.log || fail "no resume message"
grep -q "reconnecting" client0.mtls.log || fail "client 0 did not notice the restart"
cmp -s full/final_model.pt resumed/final_model.pt || fail "resumed final model differs"
echo "mTLS: server killed after round 2, resumed, clients reconnected: final model equals run 1's"

# 4. Refusals: each client must fail fast with a clear message; the server keeps serving.
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

# 5. Strategies with client-side parts run in deployment as in simulation: SCAFFOLD (control
#    variates travel in every task and update) under a server step, and FedAdam over Multi-Krum
#    with one simulated attacker; per-round test accuracy equals the simulation's.
for variant in "--federated_optimizer SCAFFOLD --server_lr 0.8" \
               "--federated_optimizer FedAdam --server_lr 0.05 --enable_defense true --defense_type multikrum --krum_param_m 3 --enable_attack true --attack_mode scaled_flip --ratio_of_poisoned_client 0.25"; do
  read -r -a extra <<< "$variant --epochs 20 --comm_round 2"
  grpc_equals_simulation strategy --min_clients 4
  echo "$variant: per-round test_accuracy over gRPC equals the simulation's"
done

# 5b. A TorchScript model exported by Debian's python3-torch: server and clients load the same
#     file, and the per-round test accuracy over gRPC equals the simulation's.
/usr/bin/python3 - "$work/mlp.pt" <<'PY' > export.log 2>&1 || fail "python3-torch could not export a model"
import sys
import torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(60, 32), nn.ReLU(), nn.Linear(32, 10))
torch.jit.script(net).save(sys.argv[1])
PY
extra=(--model "$work/mlp.pt" --epochs 20 --comm_round 2)
grpc_equals_simulation scripted --min_clients 4
echo "a TorchScript model: per-round test_accuracy over gRPC equals the simulation's"

# 6. A revoked client (token authentication, no mTLS) is refused and told why.
echo 2 >> certs/revoked.txt
start_server revoked.log --certs certs --min_clients 1 --min_available_clients 1 --comm_round 1 \
  --model_file_cache_folder ""
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

# 7. An update over the server's max_update_mb is refused before it is read; the client is told
#    the sizes, the round ends without it at once, and the server finishes the run.
cfg=(--dataset fashion_mnist --model cnn --client_num_in_total 100 --client_num_per_round 1
     --random_seed 7 --round_timeout_s 120)
start_server big.log --insecure --min_clients 1 --comm_round 1 --max_update_mb 1 \
  --model_file_cache_folder ""
sampled=$(round1_client plan.json)
[[ -n "$sampled" ]] || fail "no sampled client in plan.json"
timeout 300 "$fedml" client "${cfg[@]}" --server "localhost:$port" --client_id "$sampled" \
  --insecure > big_client.log 2>&1 || fail "the client of the oversized update exited with $?"
wait "$server_pid" || fail "server exited with $? after refusing the oversized update"
grep -q "refused client $sampled's update: a [0-9]*-byte frame is over the limit of 1048576 bytes" \
  big_client.log || fail "the client was not told why its update was refused"
grep -q "update of client $sampled refused: .*refused by the server" big.log ||
  fail "the round did not record the refusal"
echo "an update over max_update_mb=1 was refused with both sizes; the server finished the run"

# 8. A real edge client with its own data folder (--data_dir): it trains on every sample there
#    and evaluates on all of its own test samples.
cfg=(--dataset fashion_mnist --model lr --client_num_in_total 2 --client_num_per_round 1
     --random_seed 3 --round_timeout_s 120)
start_server own.log --certs certs --min_clients 1 --comm_round 1 --metrics_file own.jsonl \
  --model_file_cache_folder ""
sampled=$(round1_client own_plan.json)
timeout 300 "$fedml" client "${cfg[@]}" --server "localhost:$port" --client_id "$sampled" \
  --certs certs --data_dir /usr/share/datasets/fashion-mnist > own_client.log 2>&1 ||
  fail "the client with its own data exited with $?"
wait "$server_pid" || fail "server exited with $? (own data)"
grep -q "round 1: trained on 60000 samples" own_client.log ||
  fail "the client did not train on all 60000 samples of its folder"
grep -q '"clients":1' own.jsonl || fail "its update was not aggregated"
echo "client $sampled with its own data folder trained on all 60000 samples there"

# 9. Asynchronous FedBuff over TLS: each free client pulls the current model at once and the
#    server makes a version from every 2 updates it accepts, whatever their staleness. The first
#    task waits until all four clients (client_num_per_round) are connected, so no client finds
#    the run already over when it dials in.
cfg=("${common[@]}")
: > certs/revoked.txt  # section 6 revoked client 2; all four take part here
extra=(--federated_optimizer FedBuff --buffer_size 2 --max_concurrency 4 --epochs 20 --comm_round 6)
start_server async.log --certs certs --min_clients 1 --metrics_file async.jsonl \
  --model_file_cache_folder "" "${extra[@]}"
run_clients async "${extra[@]}"
wait "$server_pid" || fail "FedBuff server exited with $?"
[[ $(wc -l < async.jsonl) -eq 6 ]] || fail "FedBuff: expected 6 versions in async.jsonl"
[[ $(grep -c '"clients":2,' async.jsonl) -eq 6 ]] || fail "FedBuff: a version without 2 updates"
[[ $(grep -c '"test_accuracy":0' async.jsonl) -eq 6 ]] || fail "FedBuff: a version not evaluated"
grep -q '"staleness_max"' async.jsonl || fail "FedBuff: no staleness figures"
for c in 0 1 2 3; do  # the first tasks went out once all four were connected
  grep -q "trained on" "client$c.async.log" || fail "FedBuff: client $c never trained"
done
echo "FedBuff over TLS: 6 versions of 2 updates each, every one evaluated on the server; all four clients trained"

# 10. Secure aggregation over TLS: SecAgg+ with one of the four clients vanishing after it shared
#     its keys each round (recovered from the others' shares); per-round test accuracy equals the
#     simulation's, so the server's unmasked sums are the simulation's too.
extra=(--secure_aggregation secagg_plus --dropout_rate 0.25 --dropout_stage share_keys --epochs 20
       --comm_round 2)
grpc_equals_simulation secagg --min_clients 3 --min_available_clients 4
[[ $(grep -c '"clients":3,' secagg.jsonl) -eq 2 ]] || fail "secagg_plus: a round without 3 survivors"
echo "SecAgg+ over TLS with a dropout each round: per-round test_accuracy equals the simulation's"

# 10b. The same with SecAgg over mutual TLS: rounds are signed (secagg_signed_keys, on by default
#      with --mtls): each client signs its keys with client-N.key and checks its peers' against
#      ca.pem, and the consistency round runs before unmasking. The per-round test accuracy still
#      equals the (unsigned) simulation's.
extra=(--secure_aggregation secagg --dropout_rate 0.25 --dropout_stage share_keys --epochs 20
       --comm_round 2)
transport=(--mtls)
grpc_equals_simulation secagg_signed --min_clients 3 --min_available_clients 4
transport=()
grep -q "secure aggregation rounds are signed" secagg_signed.log ||
  fail "secagg over mTLS: the server did not run signed rounds"
[[ $(grep -c '"clients":3,' secagg_signed.jsonl) -eq 2 ]] || fail "signed secagg: a round without 3 survivors"
echo "signed SecAgg over mutual TLS with a dropout each round: per-round test_accuracy equals the simulation's"

# 11. Verified work over TLS: every update is spot-checked (verify_probability 1) with a key the
#     server draws at random; the one noise cheat among the four clients fails its check in both
#     rounds (its stake slashed twice, excluded after), the honest three pass, and the per-round
#     test accuracy equals the simulation's. The ledger records it and verifies.
extra=(--verification enabled --checkpoint_interval 7 --verify_probability 1 --enable_attack true
       --attack_type noise --ratio_of_poisoned_client 0.25 --epochs 20 --comm_round 2)
grpc_equals_simulation verify --min_clients 3 --min_available_clients 4 \
  --ledger_file verify_ledger.jsonl
[[ $(grep -c '"clients":3,.*"verify_failed":1,"verify_passed":3' verify.jsonl) -eq 2 ]] ||
  fail "verification: a round without 1 failed and 3 passed checks"
"$fedml" ledger verify verify_ledger.jsonl > ledger_verify.log 2>&1 || fail "ledger verify"
grep -q '"result":"fail"' verify_ledger.jsonl || fail "the ledger records no failed check"
echo "verified work over TLS: the noise cheat failed both spot checks, the others passed; accuracy equals the simulation's"
