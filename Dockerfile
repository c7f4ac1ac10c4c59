# The Defection Warehouse's Airflow image, used by every Airflow service of
# docker-compose.yml (and by its sample billing API and set-up jobs).
#
# - Airflow 3 and the project's pinned dependencies from requirements.lock (the Celery
#   provider and Redis client included), on the slim image: nothing unpinned is installed.
# - The package is installed into site-packages (a regular install, not editable); the
#   project's files (dags, dbt_project, expectations) live in /opt/project, and
#   DW_PROJECT_DIR tells the package where: its own folder would be site-packages.
# - The dbt manifest the DAG renders its dbt tasks from is built here, without a database
#   and without the pseudonymization key, so the image parses its DAG by itself.
#   docker-compose.yml's init service builds it again into a volume all services share.
FROM apache/airflow:slim-3.3.2-python3.11

ENV DW_PROJECT_DIR=/opt/project \
    DW_DATA_DIR=/opt/airflow/data \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/project/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=false \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false

# The dependencies first: this layer is rebuilt only when the lock changes.
COPY --chown=airflow:0 requirements.lock /opt/project/requirements.lock
RUN pip install --no-cache-dir -r /opt/project/requirements.lock

COPY --chown=airflow:0 pyproject.toml README.md /opt/project/
COPY --chown=airflow:0 plugins /opt/project/plugins
RUN pip install --no-cache-dir --no-deps /opt/project

COPY --chown=airflow:0 dags /opt/project/dags
COPY --chown=airflow:0 dbt_project /opt/project/dbt_project
COPY --chown=airflow:0 expectations /opt/project/expectations
COPY --chown=airflow:0 docker /opt/project/docker
# The manifest (dbt parse needs no database: the URL only fills the profile). Group 0 may
# write the project's folders, as the image's own folders, for any AIRFLOW_UID.
RUN python -c "from defection_warehouse.transform.dbt_runner import run_dbt; \
run_dbt(['parse', '--quiet'], 'postgresql://localhost/unused')" \
 && test -f /opt/project/dbt_project/target/manifest.json \
 && chmod -R g+rwX /opt/project
