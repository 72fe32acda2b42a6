"""The demo data set: deterministic, realistic companies, filings, metrics and daily prices.

Generated in Python from a fixed seed and loaded with COPY. `small` keeps the test suite fast.

Revisions as filers make them: each 10-K repeats the prior fiscal year's figures as
comparatives, a few of them restated (RESTATED of them, by 0.5-4%), and a few 10-Ks are
amended by a 10-K/A (AMENDED of them) that restates some of its figures. Revisions draw from
a random generator of their own, so the rest of the data set is what it was without them.
"""

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast

from pgvector.asyncpg import register_vector
from sqlalchemy import Index, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, DropIndex

from db.embeddings import (
    Embedder,
    HashingEmbedder,
    embed,
    filing_text,
    mark_embeddings,
    refresh_company_embeddings,
)
from db.ingest import keep_metric_kinds
from db.issuers import ISSUERS, NAME_STEMS, NAME_SUFFIXES, SECTOR_INDUSTRIES
from db.models import companies, filings, financial_metrics, stock_prices
from db.timescale import autocommit, refresh_price_aggregates

AS_OF = date(2026, 9, 30)
Size = Literal["small", "default"]
RESTATED = 0.03  # of the prior-year periods a 10-K repeats
AMENDED = 0.02  # of the 10-Ks
# what a restatement changes (at least one of them); earnings per share follow net income
RESTATABLE = ("revenue", "net_income", "operating_income", "total_liabilities")
FOLLOWS = {"net_income": ("eps_basic", "eps_diluted")}
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Shape:
    companies: int
    years: int  # fiscal years of periodic filings
    current_reports: int  # 8-Ks per company
    price_days: int  # calendar days of daily prices


SHAPES: dict[str, Shape] = {
    "small": Shape(companies=60, years=3, current_reports=4, price_days=120),
    "default": Shape(companies=500, years=8, current_reports=8, price_days=730),
}

# (name, unit, kind): flows cover a period (period_start set); instants are point-in-time.
METRICS = (
    ("revenue", "USD", "flow"),
    ("gross_profit", "USD", "flow"),
    ("operating_income", "USD", "flow"),
    ("net_income", "USD", "flow"),
    ("eps_basic", "USD/share", "flow"),
    ("eps_diluted", "USD/share", "flow"),
    ("operating_cash_flow", "USD", "flow"),
    ("total_assets", "USD", "instant"),
    ("total_liabilities", "USD", "instant"),
    ("stockholders_equity", "USD", "instant"),
    ("cash_and_equivalents", "USD", "instant"),
    ("shares_outstanding", "shares", "instant"),
)

TOPICS = (
    "supply chain constraints and component costs",
    "demand for artificial intelligence infrastructure",
    "foreign exchange headwinds in Europe and Asia",
    "share repurchases and a higher quarterly dividend",
    "litigation and regulatory investigations",
    "the acquisition of a smaller competitor",
    "restructuring charges and workforce reductions",
    "cybersecurity incidents and data protection",
    "interest rate sensitivity of the loan portfolio",
    "climate-related risks and emissions targets",
    "new product launches and pricing actions",
    "inventory levels and channel destocking",
    "labor costs and wage inflation",
    "goodwill impairment in a reporting segment",
    "capital expenditures on new manufacturing capacity",
    "subscription revenue growth and customer retention",
)
CURRENT_EVENTS = (
    ("Item 2.02", "Results of Operations and Financial Condition"),
    ("Item 5.02", "Departure or Appointment of Directors and Officers"),
    ("Item 1.01", "Entry into a Material Definitive Agreement"),
    ("Item 8.01", "Other Events"),
    ("Item 7.01", "Regulation FD Disclosure"),
)


@dataclass(frozen=True)
class Issuer:
    id: int
    ticker: str
    cik: str
    name: str
    sector: str
    industry: str
    fiscal_year_end_month: int
    annual_revenue: float  # in the first generated fiscal year
    growth: float  # yearly
    margin: float  # net margin
    shares: float
    price: float  # at the start of the price history


def issuers(rng: random.Random, count: int) -> list[Issuer]:
    real = list(ISSUERS[:count])
    taken = {ticker for ticker, *_ in real}
    while len(real) < count:
        ticker = "".join(rng.choices(string.ascii_uppercase, k=rng.choice((3, 4))))
        if ticker in taken:
            continue
        taken.add(ticker)
        sector = rng.choice(sorted(SECTOR_INDUSTRIES))
        name = f"{rng.choice(NAME_STEMS)} {rng.choice(NAME_SUFFIXES)}"
        cik = f"{rng.randrange(1_800_000, 2_100_000):010d}"
        real.append((ticker, cik, name, sector, rng.choice(SECTOR_INDUSTRIES[sector])))
    large = len(ISSUERS)  # the real issuers are the largest US companies
    return [issuer(rng, index + 1, fields, index < large) for index, fields in enumerate(real)]


def issuer(
    rng: random.Random, id: int, fields: tuple[str, str, str, str, str], large_cap: bool
) -> Issuer:
    ticker, cik, name, sector, industry = fields
    # large caps: $20-400bn of yearly revenue and profitable; others: $0.3-30bn, any margin
    revenue = 10 ** (rng.uniform(10.3, 11.6) if large_cap else rng.uniform(8.5, 10.5))
    margin = rng.uniform(0.06, 0.3) if large_cap else rng.uniform(-0.05, 0.3)
    return Issuer(
        id,
        ticker,
        cik,
        name,
        sector,
        industry,
        fiscal_year_end_month=rng.choice((12, 12, 12, 12, 3, 6, 9)),
        annual_revenue=revenue,
        growth=rng.uniform(-0.05, 0.25),
        margin=margin,
        shares=revenue / rng.uniform(20, 200),
        price=rng.uniform(15, 450),
    )


def month_end(year: int, month: int) -> date:
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return month_end(index // 12, index % 12 + 1)


@dataclass(frozen=True)
class Period:
    fiscal_year: int
    quarter: int  # 1..4; 4 is reported in the 10-K
    start: date  # of the quarter
    end: date


def periods(company: Issuer, years: int) -> Iterator[Period]:
    """Fiscal quarters, oldest first, whose reports are filed by AS_OF."""
    last_fy = AS_OF.year + (1 if AS_OF.month > company.fiscal_year_end_month else 0)
    for fiscal_year in range(last_fy - years, last_fy + 1):
        fy_end = month_end(fiscal_year, company.fiscal_year_end_month)
        for quarter in range(1, 5):
            end = add_months(fy_end, 3 * (quarter - 4))
            start = add_months(end, -3) + timedelta(days=1)
            lag = 60 if quarter == 4 else 40
            if end + timedelta(days=lag) <= AS_OF:
                yield Period(fiscal_year, quarter, start, end)


class Generator:
    """Builds rows for COPY; ids are assigned here so that children can refer to them."""

    def __init__(self, size: Size, seed: int) -> None:
        self.shape = SHAPES[size]
        self.rng = random.Random(seed)
        self.companies = issuers(self.rng, self.shape.companies)
        self.filings: list[tuple[Any, ...]] = []
        self.metrics: list[tuple[Any, ...]] = []
        self.prices: list[tuple[Any, ...]] = []
        self._sequence: dict[tuple[str, int], int] = {}
        self.revisions = random.Random(seed + 1)
        self.annual: dict[int, list[Row]] = {}  # each company's latest fiscal-year figures
        self.amendments: list[tuple[Row, list[Row]]] = []  # filing and metrics, ids to come
        self.amends: dict[int, int] = {}  # filing id -> the id of the filing it amends

    def run(self) -> "Generator":
        for company in self.companies:
            for period in periods(company, self.shape.years):
                self.periodic_filing(company, period)
            for _ in range(self.shape.current_reports):
                self.current_report(company)
            self.price_history(company)
        for filing, metrics in self.amendments:  # last: the other filings keep their ids
            self.add_amendment(filing, metrics)
        return self

    def accession(self, company: Issuer, filed: date) -> str:
        key = (company.cik, filed.year)
        self._sequence[key] = self._sequence.get(key, 0) + self.rng.randint(1, 40)
        return f"{company.cik}-{filed.year % 100:02d}-{self._sequence[key]:06d}"

    def filed_at(self, day: date) -> datetime:
        seconds = self.rng.randrange(8 * 3600, 22 * 3600)
        return datetime.combine(day, time(), UTC) + timedelta(seconds=seconds)

    def summary(self, company: Issuer, lead: str) -> str:
        topics = self.rng.sample(TOPICS, 3)
        return (
            f"{lead} {company.name} ({company.ticker}), {company.industry.lower()}, discusses "
            f"{topics[0]}, {topics[1]} and {topics[2]}."
        )

    def periodic_filing(self, company: Issuer, period: Period) -> None:
        annual = period.quarter == 4
        form = "10-K" if annual else "10-Q"
        filed = period.end + timedelta(
            days=(self.rng.randint(50, 60) if annual else self.rng.randint(30, 40))
        )
        fiscal_period = "FY" if annual else f"Q{period.quarter}"
        kind = "Annual report" if annual else "Quarterly report"
        label = (
            f"fiscal year {period.fiscal_year}"
            if annual
            else f"{fiscal_period} {period.fiscal_year}"
        )
        filing_id = len(self.filings) + 1
        filed_at = self.filed_at(filed)
        self.filings.append(
            (
                filing_id,
                self.accession(company, filed),
                company.id,
                form,
                filed_at,
                period.end,
                period.fiscal_year,
                fiscal_period,
                f"{company.name} {form} {kind.lower()} for {label}",
                self.summary(company, f"{kind} for {label}:"),
            )
        )
        first = len(self.metrics)
        self.period_metrics(company, filing_id, period, annual, filed_at)
        if annual:
            self.comparatives(company.id, filing_id, filed_at)
            self.annual[company.id] = self.metrics[first : first + len(METRICS)]
            if self.revisions.random() < AMENDED:
                self.amend(company, self.filings[-1])

    def restated(self, rows: list[Row], filing_id: int, reported_at: datetime) -> list[Row]:
        """`rows` as a later filing reports them, some values changed by 0.5-4% either way."""
        changed = set(self.revisions.sample(RESTATABLE, self.revisions.randint(1, 2)))
        factors = {}
        for name in sorted(changed):
            factor = 1 + self.revisions.choice((-1, 1)) * self.revisions.uniform(0.005, 0.04)
            for follower in (name, *FOLLOWS.get(name, ())):
                factors[follower] = factor
        out = []
        for company_id, _, name, end, start, value, unit, year, period, _ in rows:
            value = round(value * factors.get(name, 1.0), 2 if unit == "USD/share" else 0)
            out.append((company_id, filing_id, name, end, start, value, unit, year, period,
                        reported_at))  # fmt: skip
        return out

    def comparatives(self, company_id: int, filing_id: int, filed_at: datetime) -> None:
        """The prior fiscal year's figures, repeated by this 10-K; some restated."""
        prior = self.annual.get(company_id)
        if prior is None:
            return
        if self.revisions.random() < RESTATED:
            self.metrics.extend(self.restated(prior, filing_id, filed_at))
            return
        self.metrics.extend((*row[:1], filing_id, *row[2:9], filed_at) for row in prior)

    def amend(self, company: Issuer, annual: Row) -> None:
        """A 10-K/A for `annual`, one to five months later, that restates some of its figures."""
        filed = annual[4].date() + timedelta(days=self.revisions.randint(30, 150))
        if filed > AS_OF:
            return
        seconds = self.revisions.randrange(8 * 3600, 22 * 3600)
        filed_at = datetime.combine(filed, time(), UTC) + timedelta(seconds=seconds)
        number = 300_000 + sum(1 for filing, _ in self.amendments if filing[2] == company.id)
        label = f"fiscal year {annual[6]}"
        filing = (
            f"{company.cik}-{filed.year % 100:02d}-{number:06d}",
            company.id,
            "10-K/A",
            filed_at,
            *annual[5:8],
            f"{company.name} 10-K/A amended annual report for {label}",
            f"Amendment to the annual report for {label}: {company.name} ({company.ticker}) "
            "restates figures of its financial statements.",
            annual[0],
        )
        metrics = self.restated(self.annual[company.id], 0, filed_at)
        self.annual[company.id] = metrics  # the next 10-K's comparatives repeat these
        self.amendments.append((filing, metrics))

    def add_amendment(self, filing: Row, metrics: list[Row]) -> None:
        filing_id = len(self.filings) + 1
        *row, amended = filing
        self.filings.append((filing_id, *row))
        self.amends[filing_id] = amended
        self.metrics.extend((*m[:1], filing_id, *m[2:]) for m in metrics)

    def period_metrics(
        self, company: Issuer, filing_id: int, period: Period, annual: bool, filed_at: datetime
    ) -> None:
        years = (period.end - AS_OF).days / 365.25 + self.shape.years
        revenue_rate = company.annual_revenue * (1 + company.growth) ** years
        share = 1.0 if annual else self.rng.uniform(0.22, 0.28)
        revenue = revenue_rate * share
        net = revenue * (company.margin + self.rng.uniform(-0.03, 0.03))
        shares = company.shares * (1 - 0.01 * years)
        assets = revenue_rate * self.rng.uniform(1.2, 2.5)
        liabilities = assets * self.rng.uniform(0.35, 0.75)
        values = {
            "revenue": revenue,
            "gross_profit": revenue * self.rng.uniform(0.3, 0.65),
            "operating_income": net * self.rng.uniform(1.15, 1.4),
            "net_income": net,
            "eps_basic": net / shares,
            "eps_diluted": net / (shares * 1.01),
            "operating_cash_flow": net * self.rng.uniform(1.0, 1.6),
            "total_assets": assets,
            "total_liabilities": liabilities,
            "stockholders_equity": assets - liabilities,
            "cash_and_equivalents": assets * self.rng.uniform(0.05, 0.2),
            "shares_outstanding": shares,
        }
        flow_start = add_months(period.end, -12) + timedelta(days=1) if annual else period.start
        fiscal_period = "FY" if annual else f"Q{period.quarter}"
        for name, unit, kind in METRICS:
            start = flow_start if kind == "flow" else None
            value = round(values[name], 2 if unit == "USD/share" else 0)
            self.metrics.append(
                (
                    company.id,
                    filing_id,
                    name,
                    period.end,
                    start,
                    value,
                    unit,
                    period.fiscal_year,
                    fiscal_period,
                    filed_at,
                )
            )

    def current_report(self, company: Issuer) -> None:
        day = AS_OF - timedelta(days=self.rng.randrange(0, 365 * self.shape.years))
        item, event = self.rng.choice(CURRENT_EVENTS)
        self.filings.append(
            (
                len(self.filings) + 1,
                self.accession(company, day),
                company.id,
                "8-K",
                self.filed_at(day),
                None,
                None,
                None,
                f"{company.name} 8-K current report: {event}",
                self.summary(company, f"Current report ({item}, {event}):"),
            )
        )

    def price_history(self, company: Issuer) -> None:
        price = company.price
        volume = company.shares * self.rng.uniform(0.002, 0.01)
        for offset in range(self.shape.price_days, -1, -1):
            day = AS_OF - timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            open_ = price
            price = max(1.0, price * (1 + self.rng.gauss(0.0004, 0.018)))
            high = max(open_, price) * (1 + abs(self.rng.gauss(0, 0.006)))
            low = min(open_, price) * (1 - abs(self.rng.gauss(0, 0.006)))
            self.prices.append(
                (
                    company.id,
                    day,
                    round(open_, 2),
                    round(high, 2),
                    round(low, 2),
                    round(price, 2),
                    float(round(volume * self.rng.uniform(0.5, 1.8))),
                )
            )


COLUMNS = {
    "companies": ("id", "ticker", "cik", "name", "sector", "industry"),
    "filings": (
        "id",
        "accession_number",
        "company_id",
        "form_type",
        "filed_at",
        "period_end",
        "fiscal_year",
        "fiscal_period",
        "title",
        "summary",
        "embedding",
        "amends_id",
    ),
    "financial_metrics": (
        "company_id",
        "filing_id",
        "name",
        "period_end",
        "period_start",
        "value",
        "unit",
        "fiscal_year",
        "fiscal_period",
        "reported_at",
    ),
    "stock_prices": ("company_id", "date", "open", "high", "low", "close", "volume"),
}


# The loaded tables' indexes but their keys, built after the load (and after the companies'
# embeddings are averaged): one build takes a fraction of the time of as many insertions,
# most of all for HNSW.
BUILT_AFTER: list[Index] = [
    index
    for table in (companies, filings, financial_metrics, stock_prices)
    for index in sorted(cast(Table, table).indexes, key=lambda index: str(index.name))
    if not index.unique
]


async def is_seeded(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM companies)")))


# what seed() does, in order: `begin(step)` is called as each starts
STEPS = (
    "generating",
    "embedding filings",
    "copying rows",
    "embedding companies",
    "indexing",
    "analyzing",
)


async def seed(
    engine: AsyncEngine,
    size: Size = "default",
    seed: int = 20240101,
    embedder: Embedder | None = None,
    begin: Callable[[str], None] = lambda step: None,
) -> dict[str, int]:
    """Load the demo data set into empty tables with COPY, filings with their embeddings;
    returns row counts per table. `engine`: a maintenance engine (db/engine.py), since the
    continuous aggregates are refreshed over the loaded prices."""
    begin("generating")
    data = Generator(size, seed).run()
    embedder = embedder or HashingEmbedder()
    begin("embedding filings")
    vectors = await embed(embedder, [filing_text(*row[8:10]) for row in data.filings])
    tables = {
        "companies": [
            (c.id, c.ticker, c.cik, c.name, c.sector, c.industry) for c in data.companies
        ],
        "filings": [
            (*row, vector, data.amends.get(row[0]))
            for row, vector in zip(data.filings, vectors, strict=True)
        ],
        "financial_metrics": data.metrics,
        "stock_prices": data.prices,
    }
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))  # a bulk load
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))  # index builds
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for index in BUILT_AFTER:
            await conn.execute(DropIndex(index))
        await register_vector(raw)  # COPY is binary: it needs the vector codec
        begin("copying rows")
        try:
            for table, rows in tables.items():
                await raw.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
        finally:
            await raw.reset_type_codec("vector")  # the engine's own queries send text
        for table in ("companies", "filings"):
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            )
        begin("embedding companies")
        await refresh_company_embeddings(conn)
        await mark_embeddings(conn, embedder)
        await keep_metric_kinds(conn, [row[0] for row in data.filings])
        begin("indexing")
        for index in BUILT_AFTER:
            await conn.execute(CreateIndex(index))
    begin("analyzing")
    async with autocommit(engine) as conn:  # VACUUM runs outside a transaction
        # VACUUM too, not only ANALYZE: it marks the loaded pages all-visible, so index-only
        # scans (metric series on TimescaleDB: migration 0007) skip the heap from the first
        # query on, not only after autovacuum's first pass
        await conn.execute(text("VACUUM (ANALYZE)"))
    await refresh_price_aggregates(engine)
    return {table: len(rows) for table, rows in tables.items()}
