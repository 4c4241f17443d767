# One image for web and worker (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mminstruct_site ./mminstruct_site
COPY corpus ./corpus
COPY generation ./generation
COPY review ./review
COPY exports ./exports
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home app && mkdir -p /app/var /data/media /data/exports /data/staging && chown -R app /app/var /data
USER app
EXPOSE 8000
