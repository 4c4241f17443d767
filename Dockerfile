# One image for web, worker and beat (docker-compose.yml picks the command). A pinned base (patch release
# and Debian release), a non-root user, and a healthcheck of the web server (compose gives worker and beat
# their own).
FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mminstruct_site ./mminstruct_site
COPY accounts ./accounts
COPY web ./web
COPY corpus ./corpus
COPY generation ./generation
COPY review ./review
COPY exports ./exports
# libGL and GLib: OpenCV, which the OCR engine (the ocr extra) imports, links against them.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
  && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir '.[ocr]'
COPY . .
RUN useradd --create-home --uid 10001 app && mkdir -p /app/var /data/media /data/exports /data/staging && chown -R app /app/var /data
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-m", "web.health", "web"]
