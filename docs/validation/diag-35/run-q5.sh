#!/bin/bash
# q5 at 50 Mbit/s, unthrottled: cloud-only and bids at the edge in ABBA order (a linear drift cancels);
# per-operator profile and per-thread CPU of the cloud group
set -u
cd /work/runs/diag35
. /work/main/docs/validation/diag-lib.sh
$E testbed up --edge 1 --cloud 1 --edge-cpu 0.5 --edge-slots 4 --cloud-slots 8 --wan-mbit 50 || exit 1
i=0
for L in cloud-only optimal optimal cloud-only; do
  i=$((i + 1))
  job=$($E deploy --query nexmark --placement /work/main/docs/validation/diag-34/q5/$L.json --opt query=q5 --sites edge-1 --rate 0 --checkpoint-ms 10000 | tail -1)
  echo "$(date +%T) q5 $i $L job $job"
  $E collect --job "$job" --warmup 60 --duration 60 --interval 5 --out q5/$i-$L.parquet > q5/$i-$L-collect.log 2>&1 &
  cpid=$!
  sleep 75
  $PY /work/main/docs/validation/diag-34/cgthreads.py $CG/cloud-1 30 > q5/$i-$L-cloud-threads.txt &
  $PY /work/main/docs/validation/diag-34/cgthreads.py $CG/edge-1 30 > q5/$i-$L-edge-threads.txt
  wait $cpid
  $E profile --json q5/$i-$L.parquet > q5/$i-$L-profile.json
  end "$job"; echo "$(date +%T) stopped"
done
$E testbed down
