"""The root Mutation type: ingesting filings."""

from datetime import date, datetime
from typing import Annotated

import strawberry

from db.ingest import FilingInput, MetricInput, document_of
from resolvers import ingest
from resolvers.context import Info
from schema.filings import Filing


@strawberry.input(description="One reported value of a filing.")
class MetricValueInput:
    name: str = strawberry.field(description="snake_case metric name, e.g. `revenue`.")
    value: float = strawberry.field(description="A finite number.")
    unit: str = strawberry.field(description="e.g. `USD`, `shares`.")
    period_end: date = strawberry.field(description="Last day of the reported period.")
    period_start: date | None = strawberry.field(
        default=None, description="First day, for flows (revenue); null for instants (assets)."
    )
    fiscal_year: int | None = strawberry.field(default=None, description="Fiscal year.")
    fiscal_period: str | None = strawberry.field(default=None, description="`FY`, `Q1`...`Q4`.")

    def to_metric(self) -> MetricInput:
        return MetricInput(
            name=self.name,
            value=self.value,
            unit=self.unit,
            period_end=self.period_end,
            period_start=self.period_start,
            fiscal_year=self.fiscal_year,
            fiscal_period=self.fiscal_period,
        )


@strawberry.input(description="A filing to ingest; the same accession number twice is a no-op.")
class IngestFilingInput:
    ticker: str = strawberry.field(description="The filer's ticker, e.g. `AAPL`.")
    accession_number: str = strawberry.field(description="e.g. `0000320193-24-000123`.")
    form_type: str = strawberry.field(description="e.g. `10-K`, `10-Q`, `8-K`.")
    filed_at: datetime = strawberry.field(description="When the SEC accepted it.")
    period_end: date | None = strawberry.field(default=None, description="End of the period.")
    fiscal_year: int | None = strawberry.field(default=None, description="Fiscal year.")
    fiscal_period: str | None = strawberry.field(default=None, description="`FY`, `Q1`...`Q4`.")
    title: str | None = strawberry.field(default=None, description="Human-readable title.")
    summary: str | None = strawberry.field(
        default=None,
        description="What the filing is about, up to 10,000 characters: searched with the title.",
    )
    metrics: list[MetricValueInput] | None = strawberry.field(
        default=None,
        description="Values the filing reports: for its own period, and for earlier periods "
        "(comparatives, restated or not). A period reported before gets a new revision; the "
        "earlier values stay (`Metric.revisions`).",
    )
    amends: str | None = strawberry.field(
        default=None,
        description="The accession number of the filing this one amends (a `10-K/A` names its "
        "`10-K`): the same company's, filed before.",
    )
    document_text: str | None = strawberry.field(
        default=None, description="The document as text (or `documentBase64`, not both)."
    )
    document_base64: str | None = strawberry.field(
        default=None, description="The document's bytes, base64-encoded."
    )
    document_content_type: str | None = strawberry.field(
        default=None,
        description="Its media type; default `text/plain; charset=utf-8` for text, "
        "`application/octet-stream` for bytes.",
    )

    def to_filing(self) -> FilingInput:
        """Raises InvalidFiling when the document fields do not make a document."""
        document = document_of(self.document_text, self.document_base64, self.document_content_type)
        return FilingInput(
            ticker=self.ticker,
            accession_number=self.accession_number,
            form_type=self.form_type,
            filed_at=self.filed_at,
            period_end=self.period_end,
            fiscal_year=self.fiscal_year,
            fiscal_period=self.fiscal_period,
            title=self.title,
            summary=self.summary,
            metrics=tuple(m.to_metric() for m in self.metrics or ()),
            document=document,
            amends=self.amends,
        )


@strawberry.type(description="Writes. Each needs an API key with the scope it names.")
class Mutation:
    @strawberry.mutation(
        description="Store a filing and its metrics (scope `filings:write`). Idempotent: the "
        "same input again returns the stored filing; other content under the same accession "
        "number is a CONFLICT."
    )
    async def ingest_filing(
        self,
        info: Info,
        input: Annotated[IngestFilingInput, strawberry.argument(description="The filing.")],
    ) -> Filing:
        return Filing.from_row(await ingest.ingest_filing(info, input.to_filing))
