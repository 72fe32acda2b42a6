"""Ingesting one filing: checking what came in, then the filing and its metrics in one
transaction. Idempotent on the accession number: the same content again changes nothing,
other content under the same number is a conflict.

Ingestion takes a transaction-scoped advisory lock, so filings commit in the order of their
`ingest_seq`: a reader that has seen position N has seen every filing before it.
"""

import base64
import binascii
import hashlib
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.documents import Document, DocumentStore
from db.embeddings import Vector, filing_text, refresh_company_embeddings
from db.models import Filing, FinancialMetric, companies, filings, metric_kinds

INGEST_LOCK = 0x636F7270_696E6773  # "corpings": one advisory lock for all of ingestion
# NOTIFY'd inside the ingest transaction, so delivered only on commit; the payload is the
# filing's ingest_seq, a wake-up call: listeners read new filings from the table in order
FILINGS_CHANNEL = "corpgraph_filings"
ACCESSION = re.compile(r"[0-9]{10}-[0-9]{2}-[0-9]{6}")  # ASCII digits: \d is any script's
FORM_TYPE = re.compile(r"[0-9A-Z][0-9A-Z/.-]{0,15}")
FISCAL_PERIODS = {"FY", "Q1", "Q2", "Q3", "Q4", "H1", "H2"}
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_METRICS = 500
SORTED = orjson.OPT_SORT_KEYS
MAX_TITLE = 1_000
MAX_SUMMARY = 10_000
# EDGAR took its first electronic filings in 1993; no period reported then began before 1970
EARLIEST_FILING = datetime(1993, 1, 1, tzinfo=UTC)
EARLIEST_PERIOD = date(1970, 1, 1)
# above any amount a company reports (a quadrillion): sums of many stay far from overflowing
MAX_METRIC_VALUE = 1e15
MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]+(; ?charset=[a-z0-9-]+)?", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class MetricInput:
    name: str
    value: float
    unit: str
    period_end: date
    period_start: date | None = None
    fiscal_year: int | None = None
    fiscal_period: str | None = None


@dataclass(frozen=True)
class FilingInput:
    ticker: str
    accession_number: str
    form_type: str
    filed_at: datetime
    period_end: date | None = None
    fiscal_year: int | None = None
    fiscal_period: str | None = None
    title: str | None = None
    summary: str | None = None
    metrics: tuple[MetricInput, ...] = field(default_factory=tuple)
    document: Document | None = None
    amends: str | None = None  # the accession number of the filing it amends

    @property
    def text(self) -> str:
        """What its embedding is made from."""
        return filing_text(self.title, self.summary)

    def fingerprint(self, by_name: bool = False) -> str:
        """SHA-256 of the content, order of metrics aside; `by_name`, aside from the order of
        differently named ones only, as filings were fingerprinted before (two values of one
        metric sent in the other order made the same filing a CONFLICT)."""
        content = asdict(self)
        if self.summary is None:
            del content["summary"]  # as fingerprinted before summaries were taken
        if self.amends is None:
            del content["amends"]  # as fingerprinted before amendments were named
        content["ticker"] = self.ticker.upper()
        content["metrics"] = sorted(
            content["metrics"],
            key=(lambda m: m["name"]) if by_name else (lambda m: orjson.dumps(m, option=SORTED)),
        )
        if self.document is not None:
            content["document"] = {
                "sha256": hashlib.sha256(self.document.data).hexdigest(),
                "content_type": self.document.content_type,
            }
        return hashlib.sha256(orjson.dumps(content, option=SORTED)).hexdigest()


def document_of(text: str | None, encoded: str | None, content_type: str | None) -> Document | None:
    """The document of an input: text, or base64-encoded bytes, never both."""
    if text is not None and encoded is not None:
        raise InvalidFiling({"documentText": "send documentText or documentBase64, not both"})
    if text is not None:
        return Document(text.encode(), content_type or "text/plain; charset=utf-8")
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidFiling({"documentBase64": "is not base64"}) from None
        return Document(data, content_type or "application/octet-stream")
    if content_type is not None:
        raise InvalidFiling({"documentContentType": "is given without a document"})
    return None


def from_json(line: Any) -> FilingInput:
    """An `IngestFilingInput` as JSON (the GraphQL field names) into a `FilingInput`."""
    if not isinstance(line, dict):
        raise InvalidFiling({"": "each line must be a JSON object"})
    problems: dict[str, str] = {}

    def take(
        data: dict[str, Any], name: str, kind: type, where: str = "", required: bool = False
    ) -> Any:
        value = data.get(name)
        if value is None:
            if required:
                problems[where + name] = "is required"
            return None
        try:
            if kind is datetime:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            if kind is date:
                return date.fromisoformat(str(value))
            if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, kind) and not isinstance(value, bool):
                return value
        except ValueError:
            pass
        problems[where + name] = f"must be a {kind.__name__}"
        return None

    metrics = []
    for index, metric in enumerate(line.get("metrics") or ()):
        where = f"metrics[{index}]."
        if not isinstance(metric, dict):
            problems[where[:-1]] = "must be an object"
            continue
        metrics.append(
            MetricInput(
                name=take(metric, "name", str, where, True),
                value=take(metric, "value", float, where, True),
                unit=take(metric, "unit", str, where, True),
                period_end=take(metric, "periodEnd", date, where, True),
                period_start=take(metric, "periodStart", date, where),
                fiscal_year=take(metric, "fiscalYear", int, where),
                fiscal_period=take(metric, "fiscalPeriod", str, where),
            )
        )
    filing = FilingInput(
        ticker=take(line, "ticker", str, required=True),
        accession_number=take(line, "accessionNumber", str, required=True),
        form_type=take(line, "formType", str, required=True),
        filed_at=take(line, "filedAt", datetime, required=True),
        period_end=take(line, "periodEnd", date),
        fiscal_year=take(line, "fiscalYear", int),
        fiscal_period=take(line, "fiscalPeriod", str),
        title=take(line, "title", str),
        summary=take(line, "summary", str),
        metrics=tuple(metrics),
        amends=take(line, "amends", str),
    )
    text, encoded, content_type = (
        take(line, name, str) for name in ("documentText", "documentBase64", "documentContentType")
    )
    if problems:
        raise InvalidFiling(problems)
    return replace(filing, document=document_of(text, encoded, content_type))


class InvalidFiling(Exception):
    """What is wrong, by input field (`metrics[2].value`, ...)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


class Conflict(Exception):
    """The accession number exists with other content."""


def problems_of(
    filing: FilingInput, max_document_bytes: int, now: datetime | None = None
) -> dict[str, str]:
    now = now or datetime.now(UTC)
    problems: dict[str, str] = {}
    if filing.document is not None:
        if len(filing.document.data) > max_document_bytes:
            problems["document"] = f"is larger than {max_document_bytes} bytes"
        if not MEDIA_TYPE.fullmatch(filing.document.content_type):
            problems["documentContentType"] = "must be a media type such as text/html"
    if not ACCESSION.fullmatch(filing.accession_number):
        problems["accessionNumber"] = "must look like 0000320193-24-000123 (10-2-6 digits)"
    if filing.amends is not None and not ACCESSION.fullmatch(filing.amends):
        problems["amends"] = "must be an accession number such as 0000320193-24-000123"
    if not FORM_TYPE.fullmatch(filing.form_type):
        problems["formType"] = "must be an SEC form type such as 10-K, 10-Q or 8-K"
    if filing.filed_at.tzinfo is None:
        problems["filedAt"] = "must carry a time zone"
    elif filing.filed_at > now + timedelta(days=1):
        problems["filedAt"] = "is in the future"
    elif filing.filed_at < EARLIEST_FILING:
        problems["filedAt"] = f"is before {EARLIEST_FILING.year}, when EDGAR began"
    if filing.period_end is not None:
        problems |= period_problems("periodEnd", filing.period_end)
        if filing.period_end > filing.filed_at.date():
            problems["periodEnd"] = "is after filedAt"
    problems |= fiscal_year_problems("fiscalYear", filing.fiscal_year, filing.filed_at)
    problems |= nul_problems(
        {"ticker": filing.ticker, "title": filing.title, "summary": filing.summary}
    )
    problems |= fiscal_period_problems("fiscalPeriod", filing.fiscal_period)
    if filing.title is not None and len(filing.title) > MAX_TITLE:
        problems["title"] = f"is longer than {MAX_TITLE} characters"
    if filing.summary is not None and len(filing.summary) > MAX_SUMMARY:
        problems["summary"] = f"is longer than {MAX_SUMMARY} characters"
    if len(filing.metrics) > MAX_METRICS:
        problems["metrics"] = f"more than {MAX_METRICS} metrics"
    seen: set[tuple[str, date]] = set()
    for index, metric in enumerate(filing.metrics):
        where = f"metrics[{index}]"
        if not METRIC_NAME.fullmatch(metric.name):
            problems[f"{where}.name"] = "must be snake_case, e.g. net_income"
        if (metric.name, metric.period_end) in seen:
            problems[f"{where}.name"] = f"{metric.name!r} appears twice for the same period"
        seen.add((metric.name, metric.period_end))
        if not (math.isfinite(metric.value) and abs(metric.value) <= MAX_METRIC_VALUE):
            problems[f"{where}.value"] = f"must be a finite number within ±{MAX_METRIC_VALUE:g}"
        problems |= period_problems(f"{where}.periodEnd", metric.period_end)
        if metric.period_end > filing.filed_at.date():
            problems[f"{where}.periodEnd"] = "is after filedAt"  # reported: a period past
        problems |= fiscal_period_problems(f"{where}.fiscalPeriod", metric.fiscal_period)
        if metric.period_start is not None:
            problems |= period_problems(f"{where}.periodStart", metric.period_start)
            if metric.period_start > metric.period_end:
                problems[f"{where}.periodStart"] = "is after periodEnd"
        problems |= fiscal_year_problems(f"{where}.fiscalYear", metric.fiscal_year, filing.filed_at)
        if not 0 < len(metric.unit) <= 16:
            problems[f"{where}.unit"] = "must be 1-16 characters, e.g. USD"
        problems |= nul_problems({f"{where}.unit": metric.unit})
    return problems


def period_problems(name: str, day: date) -> dict[str, str]:
    if day < EARLIEST_PERIOD:
        return {name: f"is before {EARLIEST_PERIOD.isoformat()}"}
    return {}


def fiscal_year_problems(name: str, year: int | None, filed_at: datetime) -> dict[str, str]:
    """A fiscal year is named by the calendar year it ends in: at most one after filing."""
    if year is not None and not EARLIEST_PERIOD.year <= year <= filed_at.year + 1:
        return {name: f"must be between {EARLIEST_PERIOD.year} and {filed_at.year + 1}"}
    return {}


def fiscal_period_problems(name: str, period: str | None) -> dict[str, str]:
    if period is not None and period not in FISCAL_PERIODS:
        return {name: f"must be one of {', '.join(sorted(FISCAL_PERIODS))}"}
    return {}


def nul_problems(texts: dict[str, str | None]) -> dict[str, str]:
    """PostgreSQL's text cannot hold a NUL character."""
    return {
        name: "must not contain NUL characters" for name, t in texts.items() if t and "\x00" in t
    }


async def ingest(
    engine: AsyncEngine,
    filing: FilingInput,
    embedding: Vector | None,
    documents: DocumentStore | None = None,
) -> tuple[str, bool]:
    """Stores `filing` with the embedding of its text, unless it is there already;
    (accession number, whether it is new). Its document is stored first, under a key of this
    attempt's own, so that no other ingestion (an identical retry, say) can point a filing at
    it: removed again when the filing is not written, kept when the commit's outcome is in
    doubt (`prune-documents` removes it if the commit did not happen)."""
    problems = problems_of(filing, documents.max_bytes if documents else 0)
    if problems:
        raise InvalidFiling(problems)
    fingerprint = filing.fingerprint()
    key = None
    if filing.document is not None:
        if documents is None:
            raise InvalidFiling({"document": "this server keeps no documents"})
        key = f"filings/{filing.accession_number}/{fingerprint[:24]}-{secrets.token_hex(6)}"
        await documents.put(key, filing.document)
    committing = False
    try:
        async with engine.begin() as conn:
            accession, new = await write(conn, filing, embedding, fingerprint, key)
            committing = True  # leaving the block commits
    except BaseException:
        if documents is not None and key is not None and not committing:
            await documents.delete(key)
        raise
    if documents is not None and key is not None and not new:
        await documents.delete(key)  # the filing was there already, with a copy of its own
    return accession, new


async def write(
    conn: AsyncConnection,
    filing: FilingInput,
    embedding: Vector | None,
    fingerprint: str,
    document_key: str | None,
) -> tuple[str, bool]:
    await conn.execute(select(func.pg_advisory_xact_lock(INGEST_LOCK)))
    company_id = await conn.scalar(
        select(companies.c.id).where(companies.c.ticker == filing.ticker.upper())
    )
    if company_id is None:
        raise InvalidFiling({"ticker": f"no company has the ticker {filing.ticker[:32]!r}"})
    existing = (
        await conn.execute(
            select(filings.c.content_sha256).where(
                filings.c.accession_number == filing.accession_number
            )
        )
    ).first()
    if existing is not None:
        if existing.content_sha256 not in (fingerprint, filing.fingerprint(by_name=True)):
            raise Conflict(f"{filing.accession_number} was ingested before with other content")
        return filing.accession_number, False
    await check_metric_kinds(conn, filing.metrics)
    row = {
        **filing_row(filing, company_id),
        "amends_id": await amended_id(conn, filing, company_id),
        "embedding": embedding,
        "content_sha256": fingerprint,
        "document_key": document_key,
        "document_content_type": filing.document.content_type if filing.document else None,
        "document_size": len(filing.document.data) if filing.document else None,
    }
    inserted = (
        await conn.execute(insert(Filing).values(row).returning(Filing.id, Filing.ingest_seq))
    ).one()
    if filing.metrics:
        await conn.execute(
            insert(FinancialMetric),
            [metric_row(m, filing, company_id, inserted.id) for m in filing.metrics],
        )
        await keep_metric_kinds(conn, [inserted.id])
    await refresh_company_embeddings(conn, [company_id])
    await conn.execute(select(func.pg_notify(FILINGS_CHANNEL, str(inserted.ingest_seq))))
    return filing.accession_number, True


async def amended_id(conn: AsyncConnection, filing: FilingInput, company_id: int) -> int | None:
    """The id of the filing that `filing` amends: one of the same company's, filed before."""
    if filing.amends is None:
        return None
    amended = (
        await conn.execute(
            select(filings.c.id, filings.c.company_id, filings.c.filed_at).where(
                filings.c.accession_number == filing.amends
            )
        )
    ).first()
    if amended is None:
        raise InvalidFiling({"amends": f"no filing has the accession number {filing.amends}"})
    if amended.company_id != company_id:
        raise InvalidFiling({"amends": f"{filing.amends} is another company's filing"})
    if amended.filed_at > filing.filed_at:
        raise InvalidFiling({"amends": f"{filing.amends} was filed after this filing"})
    return int(amended.id)


def filing_row(filing: FilingInput, company_id: int) -> dict[str, Any]:
    return {
        "accession_number": filing.accession_number,
        "company_id": company_id,
        "form_type": filing.form_type,
        "filed_at": filing.filed_at,
        "period_end": filing.period_end,
        "fiscal_year": filing.fiscal_year,
        "fiscal_period": filing.fiscal_period,
        "title": filing.title,
        "summary": filing.summary,
    }


def metric_row(
    metric: MetricInput, filing: FilingInput, company_id: int, filing_id: int
) -> dict[str, Any]:
    """A value for the filing's own period takes the filing's fiscal year and period unless it
    names its own (a 10-K's total assets are its FY balance); an earlier period's value (a
    comparative, restated or not) is a revision of that period, reported when the filing was."""
    row = {**asdict(metric), "company_id": company_id, "filing_id": filing_id}
    row["reported_at"] = filing.filed_at
    if metric.period_end == filing.period_end:
        for name in ("fiscal_year", "fiscal_period"):
            if row[name] is None:
                row[name] = getattr(filing, name)
    return row


# The kinds of the metrics of some filings that metric_kinds does not know yet: the first
# report of a name fixes its kind (ingestion refuses a later one of the other shape).
KEEP_METRIC_KINDS = text("""
    INSERT INTO metric_kinds (name, instant, unit)
    SELECT name, bool_or(period_start IS NULL), min(unit) FROM financial_metrics
    WHERE filing_id = ANY(:filings) GROUP BY name
    ON CONFLICT (name) DO NOTHING""")


def kind_problems(metrics: Sequence[MetricInput], instants: dict[str, bool]) -> dict[str, str]:
    """Metrics of the wrong shape for their kind: a balance (an instant) takes no periodStart,
    a flow needs one. `instants` holds the known kinds; a new name takes the kind its first
    value here has. One client's input never changes how every company's data is read."""
    known = dict(instants)
    problems = {}
    for index, metric in enumerate(metrics):
        instant = known.setdefault(metric.name, metric.period_start is None)
        if instant and metric.period_start is not None:
            problems[f"metrics[{index}].periodStart"] = (
                f"{metric.name} is a balance at an instant: it takes no periodStart"
            )
        elif not instant and metric.period_start is None:
            problems[f"metrics[{index}].periodStart"] = (
                f"{metric.name} is a flow over a period: it needs periodStart"
            )
    return problems


async def check_metric_kinds(conn: AsyncConnection, metrics: Sequence[MetricInput]) -> None:
    if not metrics:
        return
    names = sorted({metric.name for metric in metrics})
    rows = await conn.execute(
        select(metric_kinds.c.name, metric_kinds.c.instant).where(metric_kinds.c.name.in_(names))
    )
    if problems := kind_problems(metrics, {row.name: row.instant for row in rows}):
        raise InvalidFiling(problems)


async def keep_metric_kinds(conn: AsyncConnection, filing_ids: list[int]) -> None:
    await conn.execute(KEEP_METRIC_KINDS, {"filings": filing_ids})


async def prune_documents(
    engine: AsyncEngine, documents: DocumentStore, older_than: timedelta
) -> list[str]:
    """Removes stored documents that no filing points at: left by an ingestion that died
    between storing its document and committing its row. Young ones may still be committing."""
    candidates = documents.keys(older_than)
    if not candidates:
        return []
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(filings.c.document_key).where(filings.c.document_key.in_(candidates))
        )
        referenced = {row.document_key for row in rows}
    orphans = [key for key in candidates if key not in referenced]
    for key in orphans:
        await documents.delete(key)
    return orphans
