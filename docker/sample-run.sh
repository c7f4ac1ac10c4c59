#!/usr/bin/env bash
# docker-compose.yml, sample profile: unpause the nightly DAG once the dag-processor has
# parsed it. The DAG does not catch up, so the scheduler starts one run at once: the night
# of yesterday (UTC), the sample's last day. Then wait for that run and report its state.
set -euo pipefail

dag=defection_nightly
today="$(date -u +%F)"

until airflow dags details "$dag" > /dev/null 2>&1; do
  echo "waiting for the dag-processor to parse $dag"
  sleep 10
done
airflow dags unpause "$dag" > /dev/null
echo "$dag unpaused: the scheduler runs the night of $(date -u -d yesterday +%F)"

# The run's logical date is today 00:00 UTC (it processes yesterday).
runs() { airflow dags list-runs "$dag" --state "$1" --start-date "$today" -o plain 2>/dev/null; }
while true; do
  if runs success | grep -q "$dag"; then
    echo "$dag succeeded: the marts are published in the warehouse (schema analytics)"
    exit 0
  fi
  if runs failed | grep -q "$dag"; then
    echo "$dag failed: see the failed task's log in the Airflow UI (http://localhost:8080)" \
         "and docs/runbook.md" >&2
    exit 1
  fi
  sleep 30
done
