"""API keys: random, prefixed, stored only as a SHA-256 hash."""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import ApiKey
from db.reader import Reader

KEY_PREFIX = "cg_"
SHOWN_PREFIX_CHARS = 10  # "cg_" and 7 random characters: enough to tell keys apart in a list


class ActiveKey(NamedTuple):
    id: int
    tier: str
    scopes: list[str]


class KeyListing(NamedTuple):
    id: int
    prefix: str
    name: str | None
    tier: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # keys carry 256 random bits: a fast hash is safe, no password hashing needed
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    db: AsyncEngine,
    tier: str,
    scopes: Sequence[str],
    name: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """Store a new key; returns its id and the key itself, which is never stored."""
    key = new_key()
    statement = (
        insert(ApiKey)
        .values(
            prefix=key[:SHOWN_PREFIX_CHARS],
            key_hash=hash_key(key),
            name=name,
            tier=tier,
            scopes=list(scopes),
            expires_at=expires_at,
        )
        .returning(ApiKey.id)
    )
    async with db.begin() as conn:
        key_id = (await conn.execute(statement)).scalar_one()
    return key_id, key


ACTIVE_KEY = select(ApiKey.id, ApiKey.tier, ApiKey.scopes).where(
    ApiKey.key_hash == bindparam("key_hash"),
    ApiKey.revoked_at.is_(None),
    or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
)


async def active_key(reader: Reader, key: str) -> ActiveKey | None:
    """The key's row if it exists, is not revoked and has not expired. On the read path: a
    request waiting for PostgreSQL is let go at its deadline without waiting for more."""
    rows = await reader.fetch(ACTIVE_KEY, {"key_hash": hash_key(key)})
    return ActiveKey(*rows[0]) if rows else None


async def list_keys(db: AsyncEngine) -> list[KeyListing]:
    columns = [getattr(ApiKey, field) for field in KeyListing._fields]
    async with db.connect() as conn:
        rows = (await conn.execute(select(*columns).order_by(ApiKey.id))).all()
    return [KeyListing(*row) for row in rows]


async def revoke_key(db: AsyncEngine, key_id: int) -> bool:
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    async with db.begin() as conn:
        return (await conn.execute(statement)).rowcount == 1
