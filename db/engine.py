"""The async engine over asyncpg, and database creation for embedded and test servers."""

from datetime import timedelta

from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(url: str | URL) -> URL:
    """Accept `postgresql://` URLs (as libpq and the embedded server give them) for asyncpg."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: timedelta = timedelta(seconds=5),
    statement_timeout: timedelta = timedelta(seconds=5),
    application_name: str = "corpgraph",
) -> AsyncEngine:
    timeout_ms = int(statement_timeout.total_seconds() * 1000)
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout.total_seconds(),
        pool_pre_ping=False,
        connect_args={
            "server_settings": {
                "statement_timeout": str(timeout_ms),
                "application_name": application_name,
            }
        },
    )


async def ensure_database(url: str | URL, *, template: str | None = None) -> bool:
    """Create the URL's database if missing (optionally from a template); True if created."""
    target = asyncpg_url(url)
    name = target.database
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists:
                return False
            clause = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            return True
    finally:
        await admin.dispose()
