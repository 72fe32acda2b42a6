"""Filings ingested over HTTP, and the subscription that alerts on them, for the alert tests."""

from typing import Any

import httpx2 as httpx

ALERT = """subscription($tickers: [String!], $formTypes: [String!], $since: String) {
  filingAdded(tickers: $tickers, formTypes: $formTypes, since: $since) {
    accessionNumber formType ingestCursor company { ticker } } }"""
INGEST = """mutation($input: IngestFilingInput!) {
  ingestFiling(input: $input) { accessionNumber ingestCursor } }"""


NUMBERS = iter(range(1, 10_000))


def ingest(
    server: str, key: str, ticker: str = "AAPL", form_type: str = "8-K", number: str = ""
) -> dict[str, Any]:
    number = number or f"0000320193-26-7{next(NUMBERS):05d}"
    filing = {"ticker": ticker, "accessionNumber": number, "formType": form_type,
              "filedAt": "2026-11-02T13:00:00Z", "title": f"{form_type} of {ticker}"}  # fmt: skip
    response = httpx.post(
        f"http://{server}/graphql",
        json={"query": INGEST, "variables": {"input": filing}},
        headers={"authorization": f"Bearer {key}"},
    )
    body = response.json()
    assert "errors" not in body, body
    stored: dict[str, Any] = body["data"]["ingestFiling"]
    return stored
