#!/usr/bin/env bash
# The algorithm tables of the README, measured in one run on Fashion-MNIST (hetero alpha 0.5,
# 100 clients):
#   1. final test accuracy of FedAvg, FedAvgM, FedAdam, FedYogi, FedAdagrad, FedProx, SCAFFOLD
#      and FedNova after the same number of rounds (10 clients per round);
#   2. 20% of each round's clients sending scaled sign-flipped updates (15 per round, 3 attackers,
#      so that Bulyan's n >= 4f + 3 holds): FedAvg clean and attacked, and the robust rules
#      attacked, each against the clean run;
#   3. aggregation cost of each robust rule against FedAvg, 50 clients x 1M parameters.
#
#   benchmarks/algorithms/compare.sh [ROUNDS] [MODEL]      (defaults: 20 cnn)
# Writes the metrics of every run under build/algorithms_compare/ and prints Markdown tables.
set -euo pipefail
rounds="${1:-20}"
model="${2:-cnn}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
fedml="$root/build/bin/fedml"
bench="$root/build/bin/robust_aggregation_bench"
out="$root/build/algorithms_compare"
mkdir -p "$out"
[[ -x "$fedml" && -x "$bench" ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }

common=(--cf "$root/examples/fedavg_fashion_mnist.yaml" --model "$model" --comm_round "$rounds"
        --model_file_cache_folder "" --frequency_of_the_test 5 --worker_num 2)

# run NAME ARGS...: one simulation; prints its final test accuracy, or, for a run that diverged
# (an attack can drive the global model to non-finite losses), "diverged at round R".
run() {
  local name="$1"; shift
  if ! "$fedml" simulate "${common[@]}" --metrics_file "$out/$name.jsonl" "$@" > "$out/$name.log" 2>&1; then
    grep -q "diverged" "$out/$name.log" ||
      { echo "run $name failed:" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
    echo "diverged at round $(( $(wc -l < "$out/$name.jsonl") + 1 ))"
    return
  fi
  tail -1 "$out/$name.jsonl" | grep -o '"test_accuracy":[0-9.e+-]*' | cut -d: -f2
}
# ACCURACY formatted, or the divergence note as it is.
fmt() { [[ "$1" == diverged* ]] && echo "$1" || printf '%.4f' "$1"; }
# seconds of wall time the run took, from its metrics.
seconds() {
  grep -o '"wall_seconds":[0-9.e+-]*' "$out/$1.jsonl" | cut -d: -f2 |
    awk '{s += $1} END {printf "%.0f", s}'
}

echo "## 1. Strategies: final test accuracy after $rounds rounds ($model, 10 of 100 clients per round)"
echo
echo "| strategy | settings | test accuracy | run time (s) |"
echo "|---|---|---|---|"
declare -a strategies=(
  "FedAvg|"
  "FedAvgM|--server_momentum 0.9 --server_lr 1.0"
  "FedAdam|--server_lr 0.01 --tau 0.001"
  "FedYogi|--server_lr 0.01 --tau 0.001"
  "FedAdagrad|--server_lr 0.01 --tau 0.001"
  "FedProx|--fedprox_mu 0.01"
  "SCAFFOLD|"
  "FedNova|"
)
for entry in "${strategies[@]}"; do
  name="${entry%%|*}"; settings="${entry#*|}"
  # shellcheck disable=SC2086
  acc=$(run "$name" --federated_optimizer "$name" $settings)
  printf '| %s | %s | %s | %s |\n' "$name" "${settings:-defaults}" "$(fmt "$acc")" "$(seconds "$name")"
done

echo
echo "## 2. 20% attackers (scaled sign flip, attack_scale 10), 15 of 100 clients per round, 3 attackers each round"
echo
echo "| aggregation | attack | test accuracy | against clean FedAvg |"
echo "|---|---|---|---|"
attack=(--client_num_per_round 15 --enable_attack true --attack_type byzantine
        --attack_mode scaled_flip --attack_scale 10 --byzantine_client_num 3)
clean=$(run clean --client_num_per_round 15)
printf '| FedAvg | none | %.4f | 0 |\n' "$clean"
for entry in "FedAvg|" "wise_median|" "trimmed_mean|--beta 0.2" "multikrum|" "bulyan|" \
             "geo_median|" "krum|" "norm_diff_clipping|--norm_bound 1.0"; do
  rule="${entry%%|*}"; settings="${entry#*|}"
  defense=()
  [[ "$rule" != FedAvg ]] && defense=(--enable_defense true --defense_type "$rule")
  # shellcheck disable=SC2086
  acc=$(run "attacked_$rule" "${attack[@]}" "${defense[@]}" $settings)
  if [[ "$acc" == diverged* ]]; then
    printf '| %s %s | scaled flip | %s | collapsed |\n' "$rule" "$settings" "$acc"
  else
    printf '| %s %s | scaled flip | %.4f | %+.1f points |\n' "$rule" "$settings" "$acc" \
      "$(awk -v a="$acc" -v c="$clean" 'BEGIN {print 100 * (a - c)}')"
  fi
done

echo
echo "## 3. Aggregation cost per round, 50 clients x 1M parameters (ratios measured in one run)"
echo
"$bench" --clients 50 --params 1000000 --reps 3
