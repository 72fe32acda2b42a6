"""The one settings object, read from CORPGRAPH_* environment variables once at start."""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("corpgraph"))


class Settings(BaseSettings):
    """Every knob of corpgraph. Durations accept seconds (`5`) or ISO 8601 (`PT5S`)."""

    model_config = SettingsConfigDict(env_prefix="CORPGRAPH_", frozen=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: SecretStr | None = None
    redis_url: str | None = None
    cache_redis_url: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: timedelta = timedelta(seconds=5)
    statement_timeout: timedelta = timedelta(seconds=5)
    request_timeout: timedelta = timedelta(seconds=10)
    entity_cache: bool = True  # Redis read-through for companies and filings by key
    entity_cache_ttl: timedelta = timedelta(minutes=5)
    # Allocations between young-generation collections. A large response allocates some
    # 100k objects that die young; CPython's default (700) collects hundreds of times per request.
    gc_threshold: int = Field(default=50_000, ge=700)

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_page_size: int = Field(default=100, ge=1)
    max_depth: int = Field(default=15, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_root_fields: int = Field(default=20, ge=1)
    max_tokens: int = Field(default=5000, ge=10)

    cors_origins: Annotated[list[str], NoDecode] = []
    csrf_prevention: bool | None = None
    introspection: bool | None = None
    allow_batching: bool = False
    # the federation gateway: the secret it sends proves a request came through it
    gateway_secret: SecretStr | None = None
    gateway_secret_header: str = "x-corpgraph-gateway-secret"
    client_ip_header: str = "x-client-ip"  # set by the gateway; ignored from anyone else

    graphiql: bool = True
    graphiql_assets_url: str | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    def replace(self, **changes: object) -> "Settings":
        """A copy with some values changed, validated like the originals."""
        return type(self)(**{**dict(self), **changes})

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured: corpgraph runs its own servers."""
        return self.database_url is None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def csrf_enabled(self) -> bool:
        return self.production if self.csrf_prevention is None else self.csrf_prevention

    @property
    def introspection_enabled(self) -> bool:
        return not self.production if self.introspection is None else self.introspection
