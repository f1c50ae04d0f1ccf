#!/usr/bin/env bash
# Federated runs across Linux network namespaces: each process (server, aggregators, clients) in
# its own namespace with one veth pair whose other end is a port of a bridge in a "switch"
# namespace, all on 10.77.0.0/24, over TLS with certificates made for the namespace addresses.
#   tier_netns.sh FEDML_BINARY WORKDIR [MODE]
# MODE flat: `fedml server` on 10.77.0.1 and 6 clients: the per-round test accuracy equals the
#   in-process simulation's.
# MODE tier (default): a top server, two aggregators (10.77.0.10, 10.77.0.11) and 6 clients, 3 on
#   each aggregator with the other as fallback. A: the per-round test accuracy equals the
#   simulation's, 6 clients a round. B: aggregator 0 killed with SIGKILL in round 2: that round
#   aggregates aggregator 1's 3 clients, round 3 all 6 (clients 0-2 rejoined through aggregator 1).
# Exits 77 (skipped) where the namespaces cannot be made (not root, no `ip netns`, no veth or
# bridge in a namespace). Each process runs under `timeout`; the EXIT trap kills them all and
# deletes every namespace the test made; a run killed by SIGKILL leaves its namespaces to the
# next run, which deletes them.
set -uo pipefail
shopt -s nullglob
fedml="${1:?usage: tier_netns.sh FEDML_BINARY WORKDIR [flat|tier]}"
work="${2:?usage: tier_netns.sh FEDML_BINARY WORKDIR [flat|tier]}"
mode="${3:-tier}"
[[ "$mode" == flat || "$mode" == tier ]] || { echo "unknown MODE '$mode' (flat or tier)"; exit 2; }
[[ "$fedml" == /* ]] || fedml="$PWD/$fedml"
started=$SECONDS

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "tier_netns needs root to make network namespaces"
command -v ip > /dev/null || skip "tier_netns needs iproute2's ip"

prefix="fl$$-"  # every namespace this run makes starts with it
namespaces=()
pids=()
# Kills every started process (the `timeout` wrapper and its child, and anything else still in
# one of our namespaces), then deletes the namespaces, which destroys their veths. Runs on EXIT
# and once more at the end of a passing run, so it must be idempotent.
cleanup() {
  local p ns
  for p in "${pids[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns delete "$ns" 2>/dev/null
  done
  pids=(); namespaces=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # the EXIT trap runs on these too

# Namespaces left by a run that was killed with SIGKILL (its trap never ran): fl<PID>- where PID
# no longer exists.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fl[0-9]+-'); do
  owner="${ns#fl}"; owner="${owner%%-*}"
  if ! kill -0 "$owner" 2>/dev/null; then
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns delete "$ns" 2>/dev/null
  fi
done

rm -rf "$work"; mkdir -p "$work"; cd "$work" || exit 1
fail() {
  echo "FAIL: $*"
  for f in *.log; do echo "== $f"; tr '\r' '\n' < "$f" | tail -20; done
  exit 1
}

# (`fedml aggregator --help` exits 0 with the main help where there is no such subcommand.)
if [[ "$mode" == tier ]] && ! grep -qE '^ +aggregator( |$)' <<< "$("$fedml" --help 2>&1)"; then
  fail "$fedml has no 'aggregator' subcommand (MODE tier needs it; MODE flat runs without)"
fi

# The topology: namespace "${prefix}sw" holds bridge br0; namespace "${prefix}NAME" holds eth0
# (ADDRESS/24, up) whose peer NAME is a port of br0. The veths are made inside the namespaces
# (ip -n), so no interface name is ever taken in the host's namespace.
sw="${prefix}sw"
ip netns add "$sw" 2> netns.err || skip "ip netns add failed: $(head -1 netns.err)"
namespaces+=("$sw")
{ ip -n "$sw" link set lo up &&
  ip -n "$sw" link add br0 type bridge &&
  ip -n "$sw" link set br0 up; } 2> netns.err ||
  skip "no Linux bridge in a namespace: $(head -1 netns.err)"
declare -A address=([srv]=10.77.0.1 [agg0]=10.77.0.10 [agg1]=10.77.0.11)
for c in 0 1 2 3 4 5; do address[c$c]="10.77.0.2$c"; done
wire() {  # wire NAME: makes namespace ${prefix}NAME at ${address[NAME]}
  local name="$1" ns="${prefix}$1"
  ip netns add "$ns" 2> netns.err || skip "ip netns add failed: $(head -1 netns.err)"
  namespaces+=("$ns")
  { ip -n "$ns" link set lo up &&
    ip -n "$ns" link add eth0 type veth peer name "$name" netns "$sw" &&
    ip -n "$sw" link set "$name" master br0 &&
    ip -n "$sw" link set "$name" up &&
    ip -n "$ns" addr add "${address[$name]}/24" dev eth0 &&
    ip -n "$ns" link set eth0 up; } 2> netns.err ||
    skip "could not wire namespace $ns to the bridge: $(head -1 netns.err)"
}
hosts=(srv c0 c1 c2 c3 c4 c5)
[[ "$mode" == tier ]] && hosts+=(agg0 agg1)
for h in "${hosts[@]}"; do wire "$h"; done
rm -f netns.err

# FILE's lines as they are written (tail -F wakes on each write, and waits for FILE to appear),
# for at most 120 s; as a process substitution nobody waits for it, and it holds none of the
# test's output open.
follow() { exec timeout 120 tail -n +1 -s 0.1 -F "$1" 2>/dev/null; }
# Waits (without polling) until FILE has a line matching PATTERN; fails after 120 s.
await_line() { grep -m1 -q -- "$2" <(follow "$1") || fail "no '$2' in $1"; }
# SIGKILL for a process started under `timeout` (the process itself, then the wrapper).
kill_hard() { pkill -KILL -P "$1"; kill -KILL "$1" 2>/dev/null; }
# in_ns NAME LOG ARGS...: `fedml ARGS` in namespace NAME under `timeout 300`, in the background,
# output to LOG; sets $pid (`ip netns exec` execs `timeout`, so $! is the wrapper's pid).
in_ns() {
  local name="$1" log="$2"; shift 2
  : > "$log"  # exists before tail -F opens it
  ip netns exec "${prefix}$name" timeout 300 "$fedml" "$@" >> "$log" 2>&1 &
  pid=$!
  pids+=("$pid")
}
# listener NAME LOG ARGS...: in_ns, then waits for the "listening on ADDR:PORT" line; sets $port.
listener() {
  local log="$2"
  in_ns "$@"
  port=$(grep -m1 -o "listening on [^ ]*" <(follow "$log") | sed 's/.*://')
  [[ -n "$port" ]] || fail "$log: nothing listening"
}
# same_accuracy TAG ROUNDS: the simulation of "${cfg[@]}" with 6 workers gives the per-round
# test_accuracy that TAG.jsonl records, for ROUNDS rounds.
same_accuracy() {
  timeout 300 "$fedml" simulate "${cfg[@]}" --worker_num 6 --metrics_file "$1_sim.jsonl" \
    --model_file_cache_folder "" > "$1_sim.log" 2>&1 || fail "$1: the simulation failed"
  local a b
  a=$(grep -o '"test_accuracy":[^,]*' "$1_sim.jsonl")
  b=$(grep -o '"test_accuracy":[^,]*' "$1.jsonl")
  [[ -n "$a" && "$a" == "$b" && $(wc -l < "$1.jsonl") -eq "$2" ]] ||
    fail "$1: per-round test_accuracy: simulation [$(echo "$a" | tr '\n' ' ')]" \
      "deployment [$(echo "$b" | tr '\n' ' ')]"
}
# The run's config: every process and the simulation get exactly these flags. Seed 7's partition
# of synthetic over 6 clients gives client 5 900 of the 1,260 training samples, above a deployed
# server's default claim cap (4 x the mean partition: 840), which would refuse its honest update
# (an aggregator checks each of its clients' claims against the same cap); 2,000 admits them all.
common=(--dataset synthetic --model mlp --client_num_in_total 6 --client_num_per_round 6
        --random_seed 7 --round_timeout_s 120 --max_claimed_samples 2000)

if [[ "$mode" == flat ]]; then
  cfg=("${common[@]}" --epochs 50 --comm_round 3)
  "$fedml" certs --out certs --clients 6 --hosts 10.77.0.1 > certs.log 2>&1 || fail "fedml certs"
  listener srv server.log server "${cfg[@]}" --address 10.77.0.1 --port 0 --certs certs \
    --min_clients 6 --metrics_file flat.jsonl --model_file_cache_folder ""
  server_pid=$pid
  client_pids=()
  for c in 0 1 2 3 4 5; do
    in_ns "c$c" "client$c.log" client "${cfg[@]}" --client_id "$c" --certs certs \
      --server "10.77.0.1:$port"
    client_pids+=("$pid")
  done
  for c in 0 1 2 3 4 5; do wait "${client_pids[$c]}" || fail "client $c exited with $?"; done
  wait "$server_pid" || fail "the server exited with $?"
  grep -q "listening on 10.77.0.1:$port (TLS" server.log ||
    fail "the server did not listen over TLS"
  [[ $(grep -c '"clients":6,' flat.jsonl) -eq 3 ]] || fail "a round without all 6 clients"
  same_accuracy flat 3
  summary="PASS flat: server on 10.77.0.1:$port and 6 clients in 7 namespaces over TLS, 3 rounds of 6 clients, per-round test_accuracy equals the simulation's"
else
  "$fedml" certs --out top --clients 2 --hosts 10.77.0.1 > certs_top.log 2>&1 ||
    fail "fedml certs (top)"
  "$fedml" certs --out leaf --clients 6 --hosts 10.77.0.10,10.77.0.11 > certs_leaf.log 2>&1 ||
    fail "fedml certs (leaf)"
  # tier TAG: the top server, both aggregators and the six clients of "${cfg[@]}", all started;
  # sets server_pid, agg_pids, client_pids. The top server writes TAG.jsonl.
  tier() {
    local tag="$1" k c
    listener srv "server.$tag.log" server "${cfg[@]}" --aggregator_num 2 --address 10.77.0.1 \
      --port 0 --certs top --metrics_file "$tag.jsonl" --model_file_cache_folder ""
    server_pid=$pid
    local top=$port
    agg_pids=(); agg_ports=()
    for k in 0 1; do
      listener "agg$k" "agg$k.$tag.log" aggregator "${cfg[@]}" --aggregator_num 2 \
        --aggregator_id "$k" \
        --upstream "10.77.0.1:$top" --upstream_certs top --address "10.77.0.1$k" --port 0 \
        --certs leaf --wait_clients 3
      agg_pids+=("$pid"); agg_ports+=("$port")
    done
    local first="10.77.0.10:${agg_ports[0]}" second="10.77.0.11:${agg_ports[1]}"
    client_pids=()
    for c in 0 1 2 3 4 5; do
      local servers="$first,$second"
      ((c >= 3)) && servers="$second,$first"
      in_ns "c$c" "client$c.$tag.log" client "${cfg[@]}" --client_id "$c" --certs leaf \
        --server "$servers"
      client_pids+=("$pid")
    done
  }

  # A. Three rounds through two aggregators: the simulation's accuracy, 6 clients each round.
  cfg=("${common[@]}" --epochs 50 --comm_round 3)
  tier A
  for c in 0 1 2 3 4 5; do wait "${client_pids[$c]}" || fail "A: client $c exited with $?"; done
  wait "$server_pid" || fail "A: the top server exited with $?"
  for k in 0 1; do wait "${agg_pids[$k]}" || fail "A: aggregator $k exited with $?"; done
  [[ $(grep -c '"clients":6,' A.jsonl) -eq 3 ]] || fail "A: a round without all 6 clients"
  same_accuracy A 3
  echo "PASS tier A: top server, 2 aggregators and 6 clients in 10 namespaces over TLS: 3 rounds of 6 clients, per-round test_accuracy equals the simulation's"

  # B. Aggregator 0 killed with SIGKILL while its clients train round 2 (600 epochs: a few
  #    seconds each): round 2 aggregates aggregator 1's 3 clients; clients 0-2 fail over to
  #    aggregator 1 and round 3 has all 6. Their failover (a refused connection, then the next
  #    address: well under a second) happens while aggregator 1's own clients still train round 2
  #    (client 5 holds 900 samples: seconds), so they are there when round 3's task arrives.
  cfg=("${common[@]}" --epochs 600 --comm_round 3)
  tier B
  await_line client0.B.log "round 2: training"
  kill_hard "${agg_pids[0]}"
  wait "${agg_pids[0]}" 2>/dev/null
  for c in 0 1 2 3 4 5; do wait "${client_pids[$c]}" || fail "B: client $c exited with $?"; done
  wait "$server_pid" || fail "B: the top server exited with $?"
  wait "${agg_pids[1]}" || fail "B: aggregator 1 exited with $?"
  grep -q '"round":2,.*"clients":3,' B.jsonl ||
    fail "B: round 2 should aggregate 3 clients: $(grep '"round":2,' B.jsonl)"
  grep -q '"round":3,.*"clients":6,' B.jsonl ||
    fail "B: round 3 should aggregate all 6 clients: $(grep '"round":3,' B.jsonl)"
  echo "PASS tier B: aggregator 0 killed in round 2: round 2 aggregated aggregator 1's 3 clients"
  echo "PASS tier B: clients 0-2 failed over to aggregator 1: round 3 aggregated all 6; every client and the server exited 0"
  summary="PASS tier: parts A and B"
fi

cleanup
left=$(ip netns list | grep "^$prefix")
[[ -z "$left" ]] || { echo "FAIL: namespaces left behind: $left"; exit 1; }
echo "$summary ($((SECONDS - started)) s; no namespace left)"
