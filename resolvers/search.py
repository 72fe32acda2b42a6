"""Filing search and nearest neighbours: what may be asked."""

from datetime import datetime

from loaders.companies import CompanyRow
from loaders.filings import FilingFilter
from loaders.search import FilingHit, SearchMode, SearchRequest
from resolvers.companies import ticker_list
from resolvers.context import Info
from resolvers.errors import UserInputError, limit_list
from resolvers.pagination import MAX_PAGE_SIZE

MAX_QUERY = 1_000  # characters
SEARCH_FIRST, SIMILAR_FIRST = 10, 5  # the schema's defaults (schema/), also for an explicit null


def check_first(first: int | None, default: int) -> int:
    if first is None:
        return default
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise UserInputError(
            f"`first` must be between 1 and {MAX_PAGE_SIZE}, received {first}.", argument="first"
        )
    return first


async def search_filings(
    info: Info,
    query: str,
    *,
    first: int | None,
    tickers: list[str] | None,
    form_types: list[str] | None,
    filed_after: datetime | None,
    mode: SearchMode,
) -> list[FilingHit]:
    words = " ".join(query.split())
    if not words:
        raise UserInputError("`query` needs something to search for.", argument="query")
    if len(words) > MAX_QUERY:
        message = f"`query` takes at most {MAX_QUERY} characters, received {len(words)}."
        raise UserInputError(message, argument="query")
    where = FilingFilter(limit_list("formTypes", form_types), ticker_list(tickers), filed_after)
    request = SearchRequest(mode, check_first(first, SEARCH_FIRST), where)
    return await info.context.loaders.search_filings(request).load(words)


async def similar_filings(info: Info, filing_id: int, first: int | None) -> list[FilingHit]:
    loader = info.context.loaders.similar_filings(check_first(first, SIMILAR_FIRST))
    return await loader.load(filing_id)


async def similar_companies(info: Info, company_id: int, first: int | None) -> list[CompanyRow]:
    loader = info.context.loaders.similar_companies(check_first(first, SIMILAR_FIRST))
    return await loader.load(company_id)
