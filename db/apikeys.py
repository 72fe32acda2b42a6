"""API keys: random, prefixed, stored only as a SHA-256 hash."""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import api_keys

KEY_PREFIX = "cg_"
SHOWN_PREFIX_CHARS = 10  # "cg_" and 7 random characters: enough to tell keys apart in a list


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
        insert(api_keys)
        .values(
            prefix=key[:SHOWN_PREFIX_CHARS],
            key_hash=hash_key(key),
            name=name,
            tier=tier,
            scopes=list(scopes),
            expires_at=expires_at,
        )
        .returning(api_keys.c.id)
    )
    async with db.begin() as conn:
        key_id = (await conn.execute(statement)).scalar_one()
    return key_id, key


async def active_key(db: AsyncEngine, key: str) -> Row[Any] | None:
    """The key's row if it exists, is not revoked and has not expired."""
    now = datetime.now(UTC)
    statement = select(api_keys.c.id, api_keys.c.tier, api_keys.c.scopes).where(
        api_keys.c.key_hash == hash_key(key),
        api_keys.c.revoked_at.is_(None),
        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
    )
    async with db.connect() as conn:
        return (await conn.execute(statement)).first()


async def list_keys(db: AsyncEngine) -> Sequence[Row[Any]]:
    statement = select(
        api_keys.c.id,
        api_keys.c.prefix,
        api_keys.c.name,
        api_keys.c.tier,
        api_keys.c.scopes,
        api_keys.c.created_at,
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
    ).order_by(api_keys.c.id)
    async with db.connect() as conn:
        return (await conn.execute(statement)).all()


async def revoke_key(db: AsyncEngine, key_id: int) -> bool:
    statement = (
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    async with db.begin() as conn:
        return (await conn.execute(statement)).rowcount == 1
