"""The baseline: a plain Starlette + asyncpg + orjson endpoint, same SQL, same JSON shape.

`POST /light` and `POST /heavy` answer exactly what corpgraph answers for the benchmark's
LIGHT and HEAVY documents, with no GraphQL in between. Each reads and parses the body it is
sent (run.py sends the same bytes as to corpgraph), as any endpoint reads its request; and
its pool skips asyncpg's reset on release, as corpgraph's does (db/reader.py): neither keeps
session state, and the reset is a round trip per statement.
"""

import os
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COMPANIES = """SELECT id, ticker, name FROM companies WHERE sector = $1 ORDER BY ticker LIMIT 21"""
COMPANY = """SELECT id, name FROM companies WHERE ticker = ANY($1::varchar[])"""
FILINGS = """SELECT f.company_id, f.id, f.accession_number, f.form_type, f.filed_at
FROM unnest($1::bigint[]) AS p(company_id) JOIN LATERAL (
  SELECT * FROM filings WHERE filings.company_id = p.company_id
    AND ($3::varchar[] IS NULL OR filings.form_type = ANY($3::varchar[]))
  ORDER BY filed_at DESC, accession_number DESC LIMIT $2) f ON true"""
METRICS = """SELECT filing_id, name, value, unit, period_end FROM financial_metrics
WHERE filing_id = ANY($1::bigint[]) ORDER BY filing_id, name"""


def iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def filings_of(
    pool: asyncpg.Pool, ids: list[int], size: int, forms: list[str] | None
) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for row in await pool.fetch(FILINGS, ids, size + 1, forms):
        grouped[row["company_id"]].append(row)
    return grouped


async def parameters(request: Request) -> Any:
    return orjson.loads(await request.body())


async def light(request: Request) -> Response:
    await parameters(request)  # the statements are fixed: the parameters are read, not used
    pool: asyncpg.Pool = request.app.state.pool
    company = (await pool.fetch(COMPANY, ["AAPL"]))[0]
    filings = (await filings_of(pool, [company["id"]], 5, None))[company["id"]][:5]
    nodes = [
        {
            "accessionNumber": f["accession_number"],
            "formType": f["form_type"],
            "filedAt": iso_z(f["filed_at"]),
        }
        for f in filings
    ]
    data = {"company": {"name": company["name"], "filings": {"nodes": nodes}}}
    return Response(orjson.dumps({"data": data}), media_type="application/json")


async def heavy(request: Request) -> Response:
    await parameters(request)
    pool: asyncpg.Pool = request.app.state.pool
    companies = (await pool.fetch(COMPANIES, "Information Technology"))[:20]
    filings = await filings_of(pool, [c["id"] for c in companies], 5, ["10-K", "10-Q"])
    filing_ids = [f["id"] for c in companies for f in filings[c["id"]][:5]]
    metrics: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in await pool.fetch(METRICS, filing_ids):
        metrics[m["filing_id"]].append(
            {
                "name": m["name"],
                "value": m["value"],
                "unit": m["unit"],
                "periodEnd": m["period_end"].isoformat(),
            }
        )
    nodes = [
        {
            "ticker": c["ticker"],
            "name": c["name"],
            "filings": {
                "nodes": [
                    {
                        "accessionNumber": f["accession_number"],
                        "formType": f["form_type"],
                        "filedAt": iso_z(f["filed_at"]),
                        "metrics": metrics[f["id"]],
                    }
                    for f in filings[c["id"]][:5]
                ]
            },
        }
        for c in companies
    ]
    return Response(
        orjson.dumps({"data": {"companies": {"nodes": nodes}}}), media_type="application/json"
    )


async def keep_session(connection: asyncpg.Connection) -> None:
    """No reset on release: nothing here sets session state."""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ["CORPGRAPH_DATABASE_URL"]
    async with asyncpg.create_pool(dsn, min_size=2, max_size=10, reset=keep_session) as pool:
        app.state.pool = pool
        yield


app = Starlette(
    routes=[Route("/light", light, methods=["POST"]), Route("/heavy", heavy, methods=["POST"])],
    lifespan=lifespan,
)


def serve(port: int, server: str) -> None:
    """On Hypercorn, or Granian embedded as `corpgraph serve --server granian` runs it."""
    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    if server == "granian":
        uvloop.run(Server(app, port=port, interface=Interfaces.ASGI, backpressure=2**20).serve())
        return
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    uvloop.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "hypercorn")
