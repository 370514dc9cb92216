# The leaderleader application image: web (gunicorn), worker and scheduler share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEADERLEADER_PRODUCTION=true \
    LEADERLEADER_HOME=/var/lib/leaderleader

WORKDIR /app
COPY pyproject.toml README.md ./
COPY leaderleader ./leaderleader
COPY webhooks ./webhooks
COPY rules ./rules
COPY connector ./connector
COPY ledger ./ledger
COPY jobs ./jobs
COPY service ./service
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/leaderleader --create-home leaderleader

USER leaderleader
EXPOSE 8000
CMD ["gunicorn", "--config", "python:service.gunicorn_conf", "webhooks.wsgi:app"]
