#!/usr/bin/env bash
# docker-compose.yml, sample profile: generate the sample business once, then drop its
# survey exports into the survey inbox.
#
# The sample ends yesterday (UTC) unless SAMPLE_END_DATE is set: the first scheduled run
# of the nightly DAG processes yesterday, so it loads the sample's last day. sample.json,
# written last by the generator, marks a finished sample; it is kept across restarts (to
# start over: `docker compose --profile sample down -v`).
set -euo pipefail

out="${DW_DATA_DIR:?}/sample"
inbox="${SURVEY_INBOX:?}"

if [[ -f "$out/sample.json" ]]; then
  echo "sample already generated in $out; keeping it"
else
  end="${SAMPLE_END_DATE:-$(date -u -d yesterday +%F)}"
  echo "generating the sample: ${SAMPLE_CUSTOMERS} customers over ${SAMPLE_MONTHS} months" \
       "ending $end (seed ${SAMPLE_SEED}, ${SAMPLE_DIFFICULTY:-standard}); CRM in the crm database"
  python -m defection_warehouse.sample --customers "${SAMPLE_CUSTOMERS}" \
    --months "${SAMPLE_MONTHS}" --seed "${SAMPLE_SEED}" --end-date "$end" \
    --difficulty "${SAMPLE_DIFFICULTY:-standard}" \
    --out "$out" --crm-url "${CRM_URL:?}" --quiet > /dev/null
  echo "sample written to $out"
fi

# The survey tool's exports, as it would deliver them (files already there are kept).
mkdir -p "$inbox"
for file in "$out"/survey_inbox/*.csv; do
  [[ -e "$inbox/${file##*/}" ]] || cp "$file" "$inbox/"
done
echo "survey inbox $inbox: $(find "$inbox" -type f | wc -l) export file(s)"
