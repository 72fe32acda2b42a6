# The corpgraph image used by compose.yaml (not built on the development machines).
FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 corpgraph
WORKDIR /app
# the pinned, hash-checked dependencies first (ops/lock.sh refreshes them), then corpgraph alone
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY graph graph
COPY schema schema
COPY resolvers resolvers
COPY loaders loaders
COPY db db
RUN pip install --no-cache-dir --no-deps .
USER corpgraph
ENV CORPGRAPH_ENV=production CORPGRAPH_HOST=0.0.0.0
EXPOSE 8000
CMD ["corpgraph", "serve"]
