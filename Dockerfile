# The execbench project image: executor (`serve`), provider `worker`, `seed`, and Locust.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p execbench service loadtests reference analysis dashboards gateway \
    && touch execbench/__init__.py service/__init__.py loadtests/__init__.py \
             reference/__init__.py analysis/__init__.py dashboards/__init__.py \
             gateway/__init__.py \
    && pip install . \
    && pip uninstall -y execbench

COPY execbench ./execbench
COPY service ./service
COPY loadtests ./loadtests
COPY reference ./reference
COPY analysis ./analysis
COPY dashboards ./dashboards
COPY gateway ./gateway
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 execbench \
    && mkdir -p /app/runs /app/.execbench && chown execbench /app/runs /app/.execbench

USER execbench
# 8000 executor, 9100 worker metrics, 8089 Locust web UI, 5557 Locust master <-> workers.
EXPOSE 8000 9100 8089 5557
ENTRYPOINT ["execbench"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
