#!/usr/bin/env bash
# Synchronous FedAvg against FedBuff and FedAsync on the same virtual clock: Fashion-MNIST
# (hetero alpha 0.5, 100 clients), client speeds log-normal with sigma 1 (heterogeneity
# lognormal, speed_sigma 1), the same seed. Every strategy has 10 clients training at once
# (FedAvg: 10 sampled per round, each round waits for its slowest; FedBuff: max_concurrency 10,
# a server step every buffer_size 10 updates; FedAsync: max_concurrency 10, a step per update).
#
# Prints each run's test accuracy against virtual time, and the goal figure: the virtual time
# FedBuff (and FedAsync) need to reach the accuracy FedAvg has after ROUNDS rounds, as a fraction
# of the time FedAvg took (goal: at most 0.5). Draws the curves into build/async_compare/curves.png
# when gnuplot is installed (Debian: gnuplot-nox).
#
#   benchmarks/async/compare.sh [ROUNDS] [MODEL]       (defaults: 20 cnn; about 17 minutes on 2 cores, mlp 80 s)
set -euo pipefail
rounds="${1:-20}"
model="${2:-cnn}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
fedml="$root/build/bin/fedml"
out="$root/build/async_compare"
mkdir -p "$out"
[[ -x "$fedml" ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }

common=(--cf "$root/examples/fedavg_fashion_mnist.yaml" --model "$model" --model_file_cache_folder ""
        --worker_num 2 --heterogeneity lognormal --speed_sigma 1 --client_num_per_round 10)

# run NAME ARGS...: one simulation, its metrics in $out/NAME.jsonl and a curve in $out/NAME.dat
# (virtual seconds, test accuracy) for the evaluated rows.
run() {
  local name="$1"; shift
  "$fedml" simulate "${common[@]}" --metrics_file "$out/$name.jsonl" "$@" > "$out/$name.log" 2>&1 ||
    { echo "run $name failed:" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
  grep '"test_accuracy":[0-9]' "$out/$name.jsonl" |
    sed -E 's/.*"test_accuracy":([0-9.e+-]+).*"virtual_seconds":([0-9.e+-]+).*/\2 \1/' > "$out/$name.dat"
}

run fedavg --federated_optimizer FedAvg --comm_round "$rounds" --frequency_of_the_test 1
# Enough versions for the asynchronous runs to pass FedAvg's accuracy (they stop at comm_round).
run fedbuff --federated_optimizer FedBuff --buffer_size 10 --max_concurrency 10 \
  --comm_round $((rounds * 2)) --frequency_of_the_test 1
run fedasync --federated_optimizer FedAsync --max_concurrency 10 --async_alpha 0.6 \
  --comm_round $((rounds * 20)) --frequency_of_the_test 10

target_t=$(tail -1 "$out/fedavg.dat" | cut -d' ' -f1)
target_acc=$(tail -1 "$out/fedavg.dat" | cut -d' ' -f2)
# reach NAME: the first virtual time NAME's accuracy is >= the target, or "never".
reach() {
  awk -v a="$target_acc" '$2 >= a { print $1; found = 1; exit } END { if (!found) print "never" }' \
    "$out/$1.dat"
}
ratio() { [[ "$1" == never ]] && echo "-" || awk -v t="$1" -v b="$target_t" 'BEGIN { printf "%.2f", t / b }'; }

echo "## Asynchronous against synchronous aggregation on one virtual clock"
echo
echo "$model on Fashion-MNIST (hetero 0.5), 100 clients, 10 training at once, client speeds"
echo "log-normal (sigma 1). Target: FedAvg's test accuracy after $rounds rounds, $target_acc,"
printf 'reached at %.1f virtual seconds.\n\n' "$target_t"
echo "| strategy | virtual s to reach $target_acc | against FedAvg (goal <= 0.5) | final accuracy | virtual s at end | versions |"
echo "|---|---|---|---|---|---|"
for name in fedavg fedbuff fedasync; do
  t=$(reach "$name")
  last=$(tail -1 "$out/$name.dat")
  label=$(case "$name" in fedavg) echo "FedAvg (sync)";; fedbuff) echo "FedBuff (K=10)";; *) echo "FedAsync (alpha 0.6)";; esac)
  printf '| %s | %s | %s | %s | %.1f | %s |\n' "$label" \
    "$([[ "$t" == never ]] && echo never || printf '%.1f' "$t")" "$(ratio "$t")" \
    "${last#* }" "${last%% *}" "$(wc -l < "$out/$name.jsonl")"
done
echo
echo "Curves (virtual seconds, test accuracy): $out/{fedavg,fedbuff,fedasync}.dat"

if command -v gnuplot > /dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 900,560 font ",11"
set output "$out/curves.png"
set title "Fashion-MNIST ($model), 100 clients, 10 training at once, log-normal speeds (sigma 1)"
set xlabel "virtual time (s)"
set ylabel "test accuracy"
set key bottom right
set grid
set yrange [0:1]
set xrange [0:$target_t * 1.05]
plot "$out/fedavg.dat" using 1:2 with linespoints pt 7 ps 0.6 lw 2 title "FedAvg (synchronous)", \
     "$out/fedbuff.dat" using 1:2 with linespoints pt 5 ps 0.5 lw 2 title "FedBuff (K = 10)", \
     "$out/fedasync.dat" using 1:2 with linespoints pt 9 ps 0.5 lw 2 title "FedAsync (alpha 0.6, polynomial a = 0.5)", \
     $target_acc with lines dt 2 lc rgb "gray" title "FedAvg after $rounds rounds"
EOF
  echo "Plot: $out/curves.png"
else
  echo "(no gnuplot: install gnuplot-nox for the plot; the numbers above are complete)"
fi
