#!/usr/bin/env bash
# A worker killed mid-round under mpirun (tests/mpi/killed_worker.cc does the killing).
#   killed_worker.sh MPIEXEC KILLED_WORKER_BINARY WORKDIR
set -uo pipefail
mpiexec="$1"; bin="$2"; work="$3"
rm -rf "$work"; mkdir -p "$work"
run=("$mpiexec" --oversubscribe --allow-run-as-root -np 3)

# With --enable-recovery the job outlives the rank: its client goes to the other worker and the
# result equals the in-process run.
timeout 300 "${run[@]}" --enable-recovery "$bin" 2 3 > "$work/recovery.log" 2>&1
rc=$?
if [[ $rc -ne 0 ]] || ! grep -q "same metrics and final model as the in-process run" "$work/recovery.log" ||
   ! grep -q "rank 2 did not answer" "$work/recovery.log"; then
  echo "with --enable-recovery (rc $rc):"; cat "$work/recovery.log"; exit 1
fi
echo "--enable-recovery: rank 2 killed mid-round, its client reassigned, same result as in-process"

# Without it OpenMPI ends the job: a non-zero exit (not our timeout) that names the dead rank.
timeout 300 "${run[@]}" "$bin" 2 3 > "$work/abort.log" 2>&1
rc=$?
if [[ $rc -eq 0 || $rc -eq 124 ]] || ! grep -qi "rank 2" "$work/abort.log"; then
  echo "without --enable-recovery (rc $rc):"; cat "$work/abort.log"; exit 1
fi
echo "no recovery: mpirun stopped with exit $rc naming rank 2"
