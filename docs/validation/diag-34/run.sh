#!/bin/bash
# (1) q5 at 50 Mbit/s, unthrottled: cloud-only vs bids at the edge, alternating; per-operator profile + per-thread CPU
# (2) q3 edge-max with the edge's CFS period 100 ms vs 10 ms (same 0.5-core quota), alternating
set -u
cd /work/runs/q5diag
. /work/main/docs/validation/diag-lib.sh
$E testbed up --edge 1 --cloud 1 --edge-cpu 0.5 --edge-slots 4 --cloud-slots 8 --wan-mbit 50 || exit 1
for i in 1 2; do for L in cloud-only optimal; do
  job=$($E deploy --query nexmark --placement $L.json --opt query=q5 --sites edge-1 --rate 0 --checkpoint-ms 10000 | tail -1)
  echo "$(date +%T) q5 $L $i job $job"
  $E collect --job "$job" --warmup 60 --duration 60 --interval 5 --out $L-$i.parquet > $L-$i-collect.log 2>&1 &
  cpid=$!
  sleep 75
  $PY cgthreads.py $CG/cloud-1 30 > $L-$i-cloud-threads.txt &
  $PY cgthreads.py $CG/edge-1 30 > $L-$i-edge-threads.txt
  wait $cpid
  $E profile --json $L-$i.parquet > $L-$i-profile.json
  end "$job"; echo "$(date +%T) stopped"
done; done
for i in 1 2; do for P in 100000 10000; do
  echo $P > $CG/edge-1/cpu.cfs_period_us; echo $((P / 2)) > $CG/edge-1/cpu.cfs_quota_us
  cat $CG/edge-1/cpu.stat > q3-$P-$i-stat-before.txt
  job=$($E deploy --query nexmark --placement q3-edge-max.json --opt query=q3 --sites edge-1 --rate 0 --checkpoint-ms 10000 | tail -1)
  echo "$(date +%T) q3 edge-max period $P $i job $job"
  $E collect --job "$job" --warmup 45 --duration 90 --interval 5 --out q3-$P-$i.parquet > q3-$P-$i-collect.log 2>&1
  $E profile --json q3-$P-$i.parquet > q3-$P-$i-profile.json
  cat $CG/edge-1/cpu.stat > q3-$P-$i-stat-after.txt
  end "$job"; echo "$(date +%T) stopped"
done; done
echo 100000 > $CG/edge-1/cpu.cfs_period_us; echo 50000 > $CG/edge-1/cpu.cfs_quota_us
$E testbed down
