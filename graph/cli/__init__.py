"""The `corpgraph` command and what it runs: serving (Hypercorn), embedded PostgreSQL and Redis,
migrations, the seed, ingestion from files."""
