"""Liveness and readiness. PostgreSQL down: not ready. Redis down: ready but degraded."""

import asyncio
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from graph.services import Services

PROBE_TIMEOUT_SECONDS = 2.0


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def postgres_ok(db: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError, TimeoutError):
        return False


async def redis_status(redis: Redis | None) -> str:
    if redis is None:
        return "disabled"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await redis.ping()
        return "ok"
    except (RedisError, OSError, TimeoutError):
        return "degraded"


async def ready(request: Request) -> JSONResponse:
    services: Services = request.app.state.services  # graph/services.py imports this module
    postgres, redis = await asyncio.gather(postgres_ok(services.db), redis_status(services.redis))
    body = {
        "status": "ok" if postgres else "unavailable",
        "postgres": "ok" if postgres else "unavailable",
        "redis": redis,
        # budgets: in Redis for every process, or (Redis away) each process on its own
        "rateLimiting": "shared"
        if redis == "ok" and not services.limiter.degraded
        else "per-process",
    }
    headers = {} if postgres else {"Retry-After": "5"}
    return JSONResponse(body, 200 if postgres else 503, headers)
