"""corpgraph's application edge, one sub-package per part, imports running one way down the list:

- `cli`: the `corpgraph` command, serving, embedded PostgreSQL and Redis;
- `transports`: HTTP, WebSocket, Server-Sent Events, the subscriptions they carry;
- `observability`: traces, metrics, logs, health;
- `pipeline`: the one chain of policies every operation runs through;
- `execution`: the executors.

Beside them, `app.py` assembles everything (`create_app`), `services.py` is what the app builds
at start and passes down, `settings.py` the one settings object; every part may use those three,
`bounded.py` and `redis_client.py` (the Redis client of every role)."""
