# opsboard image: the web app (gunicorn), Celery worker and beat share it. The demo app and the
# emulator extra stay out: production never imports them.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPSBOARD_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
COPY opsboard ./opsboard
COPY pipelines ./pipelines
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir . \
 && SECRET_KEY=build-only python manage.py collectstatic --noinput \
 && useradd --create-home opsboard && mkdir -p /app/var && chown -R opsboard /app/var
USER opsboard
EXPOSE 8000
CMD ["gunicorn", "opsboard.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
