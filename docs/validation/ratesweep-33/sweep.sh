#!/bin/bash
# Worker cores of each q8 operator against its rate, at the edge and in the cloud (fixed vs per-record CPU).
# usage: sweep.sh QUERY LAYOUT RATE...  with the testbed up: edgeplace testbed up --edge-slots 4 --cloud-slots 8 --unshaped
# (session 33 ran: sweep.sh q8 edge 800 1600 2400 3200; sweep.sh q8 cloud 800 2400 5000)
set -u
EP=${EDGEPLACE:-edgeplace}
cd "$(dirname "$0")"
q=$1; layout=$2; shift 2
for rate in "$@"; do
  tag=$q-$layout-$rate
  out=$($EP deploy --query nexmark --placement $layout-$q.json -- --opt query=$q --rate $rate 2>&1)
  job=$(echo "$out" | grep -o 'job [0-9a-f]\{32\}' | head -1 | cut -d' ' -f2)
  echo "$tag job=$job"
  if [ -z "$job" ]; then echo "$out"; continue; fi
  $EP collect --job $job --warmup 60 --duration 40 --interval 5 --out /tmp/$tag.parquet > /dev/null 2>&1
  $EP profile --json /tmp/$tag.parquet > profiles/$tag.json 2>/dev/null
  curl -s -X PATCH "http://127.0.0.1:8081/jobs/$job?mode=cancel" > /dev/null
  sleep 8
done
