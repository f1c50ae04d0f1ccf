#!/usr/bin/env bash
# Same config and seed, same answer: the per-round test accuracy (and loss) of `mpirun -np K
# fedml simulate --backend MPI` equals the in-process run's, for K = 3 and 4.
#   parity.sh FEDML_BINARY MPIEXEC WORKDIR
set -euo pipefail
fedml="$1"; mpiexec="$2"; work="$3"
rm -rf "$work"; mkdir -p "$work"
common=(--dataset synthetic --model lr --client_num_in_total 30 --client_num_per_round 7
        --comm_round 3 --random_seed 5 --model_file_cache_folder "" --round_timeout_s 120)
"$fedml" simulate "${common[@]}" --backend inproc --worker_num 2 --metrics_file "$work/inproc.jsonl" >/dev/null
for k in 3 4; do
  timeout 300 "$mpiexec" --oversubscribe --allow-run-as-root -np "$k" \
    "$fedml" simulate "${common[@]}" --backend MPI --metrics_file "$work/mpi$k.jsonl" > "$work/mpi$k.log" 2>&1 ||
    { echo "mpirun -np $k failed:"; cat "$work/mpi$k.log"; exit 1; }
  for field in test_accuracy test_loss train_loss; do
    a=$(grep -o "\"$field\":[^,]*" "$work/inproc.jsonl")
    b=$(grep -o "\"$field\":[^,]*" "$work/mpi$k.jsonl")
    if [[ "$a" != "$b" ]]; then
      echo "$field differs between inproc and mpirun -np $k:"; echo "$a"; echo "--"; echo "$b"; exit 1
    fi
  done
  [[ $(wc -l < "$work/mpi$k.jsonl") -eq 3 ]] || { echo "expected 3 rounds from -np $k"; exit 1; }
  echo "mpirun -np $k: per-round test_accuracy, test_loss and train_loss equal the in-process run"
done
# A TorchScript model exported by Debian's python3-torch (scripts/setup.sh installs it for the
# tests): its weights come from the file, so every process starts from the same model.
/usr/bin/python3 - "$work/mlp.pt" <<'PY' || { echo "python3-torch could not export a model"; exit 1; }
import sys
import torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(60, 32), nn.ReLU(), nn.Linear(32, 10))
torch.jit.script(net).save(sys.argv[1])
PY
# Strategies with server state (SCAFFOLD's control variates, FedAdam's moments), a robust rule
# under a simulated attack, secure aggregation with dropouts (SecAgg, SecAgg+) and verified work
# with a noise cheat give the same answer under mpirun too.
for variant in "--model $work/mlp.pt" \
               "--federated_optimizer SCAFFOLD" \
               "--federated_optimizer FedAdam --server_lr 0.03" \
               "--enable_defense true --defense_type multikrum --byzantine_client_num 2 --enable_attack true --attack_mode flip" \
               "--secure_aggregation secagg --dropout_rate 0.3 --dropout_stage share_keys" \
               "--secure_aggregation secagg_plus --num_shares 5 --dropout_rate 0.2 --dropout_stage mask_input" \
               "--verification enabled --checkpoint_interval 3 --verify_probability 0.5 --enable_attack true --attack_type noise --ratio_of_poisoned_client 0.2"; do
  # shellcheck disable=SC2086
  "$fedml" simulate "${common[@]}" $variant --backend inproc --worker_num 2 \
    --metrics_file "$work/v_inproc.jsonl" >/dev/null
  # shellcheck disable=SC2086
  timeout 300 "$mpiexec" --oversubscribe --allow-run-as-root -np 3 \
    "$fedml" simulate "${common[@]}" $variant --backend MPI --metrics_file "$work/v_mpi.jsonl" \
    > "$work/v_mpi.log" 2>&1 || { echo "mpirun with $variant failed:"; cat "$work/v_mpi.log"; exit 1; }
  # With verification the same spot checks pass and fail too.
  a=$(grep -o '"\(test_accuracy\|verify_passed\|verify_failed\)":[^,]*' "$work/v_inproc.jsonl")
  b=$(grep -o '"\(test_accuracy\|verify_passed\|verify_failed\)":[^,]*' "$work/v_mpi.jsonl")
  [[ "$a" == "$b" ]] || { echo "$variant: test_accuracy differs:"; echo "$a"; echo "--"; echo "$b"; exit 1; }
  echo "$variant: mpirun -np 3 equals the in-process run"
done
# Asynchronous aggregation on the virtual clock: updates are applied in virtual-time order, so
# FedBuff and FedAsync under mpirun (3 and 4 ranks) equal the in-process run too.
for variant in "--federated_optimizer FedBuff --buffer_size 4 --max_concurrency 8 --comm_round 6" \
               "--federated_optimizer FedAsync --max_concurrency 6 --comm_round 12 --frequency_of_the_test 4"; do
  # shellcheck disable=SC2086
  "$fedml" simulate "${common[@]}" $variant --heterogeneity lognormal --backend inproc --worker_num 2 \
    --metrics_file "$work/a_inproc.jsonl" >/dev/null
  for k in 3 4; do
    # shellcheck disable=SC2086
    timeout 300 "$mpiexec" --oversubscribe --allow-run-as-root -np "$k" \
      "$fedml" simulate "${common[@]}" $variant --heterogeneity lognormal --backend MPI \
      --metrics_file "$work/a_mpi.jsonl" > "$work/a_mpi.log" 2>&1 ||
      { echo "mpirun -np $k with $variant failed:"; cat "$work/a_mpi.log"; exit 1; }
    for field in test_accuracy virtual_seconds staleness_max; do
      a=$(grep -o "\"$field\":[^,}]*" "$work/a_inproc.jsonl")
      b=$(grep -o "\"$field\":[^,}]*" "$work/a_mpi.jsonl")
      [[ -n "$a" && "$a" == "$b" ]] ||
        { echo "$variant: $field differs under -np $k:"; echo "$a"; echo "--"; echo "$b"; exit 1; }
    done
    echo "$variant: mpirun -np $k equals the in-process run (accuracy, virtual time, staleness)"
  done
done
# worker_num that disagrees with the rank count is refused with what to run.
if "$mpiexec" --oversubscribe --allow-run-as-root -np 3 "$fedml" simulate "${common[@]}" \
    --backend MPI --worker_num 5 > "$work/bad.log" 2>&1; then
  echo "worker_num 5 under -np 3 was accepted"; exit 1
fi
grep -q "mpirun -np 6" "$work/bad.log" || { echo "no hint in:"; cat "$work/bad.log"; exit 1; }
echo "worker_num 5 under -np 3 refused with a hint"
# A gpu mapping that places fewer processes than there are ranks stops every rank with the reason.
printf 'mapping_default:\n  %s: [1, 1]\n' "$(hostname)" > "$work/gpus.yaml"
if timeout 120 "$mpiexec" --oversubscribe --allow-run-as-root -np 3 "$fedml" simulate "${common[@]}" \
    --backend MPI --gpu_mapping_file "$work/gpus.yaml" > "$work/gpus.log" 2>&1; then
  echo "a 2-slot gpu mapping under -np 3 was accepted"; exit 1
fi
grep -q "places 2 processes but 3 ranks" "$work/gpus.log" || { echo "no reason in:"; cat "$work/gpus.log"; exit 1; }
echo "gpu mapping with 2 slots under -np 3 refused with the reason"
