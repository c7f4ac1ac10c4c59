# Airflow image with the project's pinned dependencies, for docker-compose.yml.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/project/
COPY --chown=airflow:root plugins /opt/project/plugins
RUN pip install --no-cache-dir -r /opt/project/requirements.lock \
 && pip install --no-cache-dir --no-deps /opt/project
