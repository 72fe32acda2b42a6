"""Filing search and nearest neighbours, one statement per batch of queries or keys.

VECTOR ranks by cosine distance between embeddings on the HNSW indexes; filters go into the
same statement, and pgvector's iterative index scans (`hnsw.iterative_scan`, set on the read
pool) keep scanning until `first` rows pass them. TEXT ranks full-text matches of the
generated `search_text` (GIN) by `ts_rank_cd`. HYBRID fuses the two rankings' top
candidates by reciprocal rank fusion: score = sum of 1 / (60 + rank).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Literal, NamedTuple, TypeVar

from asyncpg import Record
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger, Integer, String

from db.embeddings import Embedder, embed, literal
from db.reader import Reader
from loaders.companies import CompanyRow
from loaders.filings import FilingFilter, FilingRow
from loaders.sql import align_many

SearchMode = Literal["VECTOR", "TEXT", "HYBRID"]
V = TypeVar("V")
CANDIDATES = 100  # per ranking that HYBRID fuses (the largest `first`)
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Büttcher, 2009)


class FilingHit(NamedTuple):
    filing: FilingRow
    score: float  # higher is nearer


@dataclass(frozen=True)
class SearchRequest:
    mode: SearchMode
    first: int
    where: FilingFilter


def filter_sql(shape: tuple[bool, ...]) -> str:
    """FilingFilter's conditions on `f`, for the statements below."""
    form_types, tickers, filed_after, filed_before = shape
    conditions = (
        (form_types, "f.form_type = ANY(:form_types)"),
        (tickers, "f.company_id IN (SELECT id FROM companies WHERE ticker = ANY(:tickers))"),
        (filed_after, "f.filed_at >= :filed_after"),
        (filed_before, "f.filed_at < :filed_before"),
    )
    return "".join(f" AND {sql}" for present, sql in conditions if present)


def nearest_sql(filters: str, limit: str) -> str:
    """Filing ids nearest to `q.vector`. Iterative scans may return rows slightly out of
    order: they are sorted again outside the LIMIT."""
    return f"""
        SELECT id, distance FROM (
            SELECT f.id, f.embedding <=> q.vector AS distance FROM filings f
            WHERE q.vector IS NOT NULL AND f.embedding IS NOT NULL{filters}
            ORDER BY f.embedding <=> q.vector LIMIT {limit}
        ) nearest ORDER BY distance, id"""


def matching_sql(filters: str, limit: str) -> str:
    """Filing ids whose text matches `q.tsquery`, best first."""
    return f"""
        SELECT f.id, ts_rank_cd(f.search_text, q.tsquery, 32)::float8 AS rank FROM filings f
        WHERE f.search_text @@ q.tsquery{filters}
        ORDER BY rank DESC, f.id LIMIT {limit}"""


def scored_sql(mode: SearchMode, filters: str) -> str:
    if mode == "VECTOR":
        return f"SELECT id, 1 - distance AS score FROM ({nearest_sql(filters, ':first')}) v"
    if mode == "TEXT":
        return f"SELECT id, rank AS score FROM ({matching_sql(filters, ':first')}) t"
    nearest = f"SELECT id FROM ({nearest_sql(filters, str(CANDIDATES))}) v"
    matching = f"SELECT id FROM ({matching_sql(filters, str(CANDIDATES))}) t"
    return f"""
        SELECT id, sum(1.0 / ({RRF_K} + rank))::float8 AS score FROM (
            SELECT * FROM unnest(ARRAY({nearest})) WITH ORDINALITY AS v(id, rank)
            UNION ALL
            SELECT * FROM unnest(ARRAY({matching})) WITH ORDINALITY AS t(id, rank)
        ) ranked GROUP BY id ORDER BY score DESC, id LIMIT :first"""


def grouped(
    keys: Sequence[int], rows: Sequence[Record], make: Callable[[Record], V]
) -> list[list[V]]:
    """Rows keyed by their first column, grouped in the order of `keys` and made into values."""
    return [[make(row) for row in group] for group in align_many(keys, rows, itemgetter(0))]


def filing_hit(row: Record) -> FilingHit:
    """A row of `key, score, FilingRow columns...`."""
    return FilingHit(FilingRow(*row[2:]), row[1])


FILING_COLUMNS = ", ".join(f"f.{name}" for name in FilingRow._fields)
COMPANY_COLUMNS = ", ".join(f"c.{name}" for name in CompanyRow._fields)


@cache
def search_statement(mode: SearchMode, shape: tuple[bool, ...]) -> TextClause:
    statement = text(f"""
        WITH q AS MATERIALIZED (  -- parse each query once, not once per row it meets
            SELECT ord, CAST(vector AS vector) AS vector,
                   websearch_to_tsquery('english', query) AS tsquery
            FROM unnest(CAST(:queries AS text[]), CAST(:vectors AS text[]))
                 WITH ORDINALITY AS given(query, vector, ord)
        )
        SELECT q.ord, hit.score, {FILING_COLUMNS}
        FROM q CROSS JOIN LATERAL ({scored_sql(mode, filter_sql(shape))}) hit
        JOIN filings f ON f.id = hit.id
        ORDER BY q.ord, hit.score DESC, f.id
    """)  # every interpolation: a fixed fragment above
    return statement.bindparams(
        bindparam("queries", type_=ARRAY(String())),
        bindparam("vectors", type_=ARRAY(String())),
        bindparam("first", type_=Integer()),
    )


async def search_filings(
    db: Reader, embedder: Embedder, request: SearchRequest, queries: Sequence[str]
) -> list[list[FilingHit]]:
    """Each query's best `first` filings, best first."""
    vectors: list[str | None] = [None] * len(queries)
    if request.mode != "TEXT":
        vectors = [literal(vector) for vector in await embed(embedder, queries)]
    statement = search_statement(request.mode, request.where.shape)
    params = {"queries": list(queries), "vectors": vectors, "first": request.first}
    rows = await db.fetch(statement, params | request.where.params())
    return grouped(range(1, len(queries) + 1), rows, filing_hit)  # keyed by ordinality


# The neighbours of stored rows (the statements below) are planned with sequential scans off.
# Otherwise PostgreSQL plans each key's search as a sequential scan and a top-N sort: it
# prices the HNSW scan from ef_search (160 on the read pool: 2,854 on the default data set,
# 1,124 on the small one) above a scan that it prices without reading each toasted embedding
# or computing its 384-dimension distance (2,657 and 129): measured, 100 ms per key on the
# default data set and 9 ms on the small one, growing with the table, against 2-5 ms for
# the index. A literal query vector (search_filings) meets the same estimates, but one scan
# per query, not per parent row.
PREFER_INDEX = "SET LOCAL enable_seqscan = off"

SIMILAR_FILINGS = text(f"""
    SELECT s.id, hit.score, {FILING_COLUMNS}
    FROM filings s CROSS JOIN LATERAL (
        SELECT id, 1 - distance AS score FROM (
            SELECT f.id, f.embedding <=> s.embedding AS distance FROM filings f
            WHERE f.embedding IS NOT NULL AND f.id <> s.id
            ORDER BY f.embedding <=> s.embedding LIMIT :first
        ) nearest
    ) hit JOIN filings f ON f.id = hit.id
    WHERE s.id = ANY(:keys) AND s.embedding IS NOT NULL
    ORDER BY s.id, hit.score DESC, f.id
""").bindparams(bindparam("keys", type_=ARRAY(BigInteger())), bindparam("first", type_=Integer()))

SIMILAR_COMPANIES = text(f"""
    SELECT s.id, {COMPANY_COLUMNS}
    FROM companies s CROSS JOIN LATERAL (
        SELECT c.id, c.embedding <=> s.embedding AS distance FROM companies c
        WHERE c.embedding IS NOT NULL AND c.id <> s.id
        ORDER BY c.embedding <=> s.embedding LIMIT :first
    ) hit JOIN companies c ON c.id = hit.id
    WHERE s.id = ANY(:keys) AND s.embedding IS NOT NULL
    ORDER BY s.id, hit.distance, c.id
""").bindparams(bindparam("keys", type_=ARRAY(BigInteger())), bindparam("first", type_=Integer()))


async def similar_filings(
    db: Reader, first: int, filing_ids: Sequence[int]
) -> list[list[FilingHit]]:
    params = {"keys": list(filing_ids), "first": first}
    rows = await db.fetch(SIMILAR_FILINGS, params, PREFER_INDEX)
    return grouped(filing_ids, rows, filing_hit)


async def similar_companies(
    db: Reader, first: int, company_ids: Sequence[int]
) -> list[list[CompanyRow]]:
    params = {"keys": list(company_ids), "first": first}
    rows = await db.fetch(SIMILAR_COMPANIES, params, PREFER_INDEX)
    return grouped(company_ids, rows, lambda row: CompanyRow(*row[1:]))
