"""Typed SQLAlchemy models. Reads use their tables through Core `select()`, never ORM objects."""

from datetime import date, datetime
from typing import Any, ClassVar, cast

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Computed,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EMBEDDING_DIMENSIONS = 384
# what full-text search reads: the title weighs more than the summary
SEARCH_TEXT = (
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(summary, '')), 'B')"
)


def nearest_neighbours_index() -> Index:
    """HNSW over the embedding, by cosine distance (the `<=>` operator); denser than
    pgvector's defaults (m 16, ef_construction 64): see migration 0005."""
    return Index(
        None,
        "embedding",
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_with={"m": 32, "ef_construction": 200},
    )


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: TIMESTAMP(timezone=True)}


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(10), unique=True)
    cik: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(Text)
    sector: Mapped[str | None] = mapped_column(Text)
    industry: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIMENSIONS))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (Index(None, "sector", "ticker"), nearest_neighbours_index())


class Filing(Base):
    __tablename__ = "filings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(20), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    form_type: Mapped[str] = mapped_column(String(16))
    filed_at: Mapped[datetime] = mapped_column()
    period_end: Mapped[date | None] = mapped_column(Date)
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    fiscal_period: Mapped[str | None] = mapped_column(String(4))
    title: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIMENSIONS))
    search_text: Mapped[str] = mapped_column(TSVECTOR, Computed(SEARCH_TEXT, persisted=True))
    # position in ingestion order (a sequence; ingestion holds a lock so commits keep its order)
    ingest_seq: Mapped[int] = mapped_column(
        BigInteger, server_default=text("nextval('filings_ingest_seq')"), unique=True
    )
    content_sha256: Mapped[str | None] = mapped_column(String(64))  # of what was ingested
    document_key: Mapped[str | None] = mapped_column(Text)  # in the document store
    document_content_type: Mapped[str | None] = mapped_column(Text)
    document_size: Mapped[int | None] = mapped_column(BigInteger)
    # the filing this one amends (a 10-K/A names its 10-K)
    amends_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("filings.id", ondelete="SET NULL")
    )

    __table_args__ = (
        # keyset pagination: newest first, per company and across all companies
        Index(None, "company_id", filed_at.desc(), accession_number.desc()),
        Index(None, filed_at.desc(), accession_number.desc()),
        Index(None, "search_text", postgresql_using="gin"),
        nearest_neighbours_index(),
    )


class FinancialMetric(Base):
    """One reported value: a later filing that reports the same period adds a revision, never
    overwrites one. A TimescaleDB hypertable on `period_end` where available."""

    __tablename__ = "financial_metrics"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    filing_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # part of the key: TimescaleDB requires every unique index to include the time column
    period_end: Mapped[date] = mapped_column(Date, primary_key=True)
    period_start: Mapped[date | None] = mapped_column(Date)
    value: Mapped[float] = mapped_column(Double)
    unit: Mapped[str] = mapped_column(String(16))
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    fiscal_period: Mapped[str | None] = mapped_column(String(4))
    # its filing's filed_at, copied: "the latest value reported by then" reads this table only
    reported_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index(None, "company_id", "name", "period_end"),)


class MetricKind(Base):
    """What a metric name stands for, kept as metrics are stored (db/ingest.py, db/seed.py):
    a balance at an instant (reported with no period start: never summed) or a flow."""

    __tablename__ = "metric_kinds"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instant: Mapped[bool]
    unit: Mapped[str] = mapped_column(String(16))


class StockPrice(Base):
    """One daily bar. A TimescaleDB hypertable on `date` where available."""

    __tablename__ = "stock_prices"

    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


companies = Company.__table__
filings = cast(Table, Filing.__table__)
financial_metrics = FinancialMetric.__table__
stock_prices = StockPrice.__table__
metric_kinds = MetricKind.__table__
api_keys = ApiKey.__table__
