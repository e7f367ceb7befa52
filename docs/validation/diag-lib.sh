# Shared by the diag-*/run*.sh scripts (source it): the checkout's CLI and Python, the testbed's CPU groups,
# and `end JOB`, which stops a job with a savepoint (else cancels it) into ./sp.
E=/work/main/.venv/bin/edgeplace
PY=/work/main/.venv/bin/python
CG=/sys/fs/cgroup/cpu/edgeplace/epbr0
end() {
  $PY -c "
from pathlib import Path
from collectors.rest import FlinkRest
from placement.flink import end
end(FlinkRest('http://127.0.0.1:8081'), '$1', Path('sp').resolve())
"
}
