"""Filing documents: stored before the row commits, fetched through signed, expiring links."""

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient

from db.documents import Document, DocumentStore, minio_client
from db.engine import create_engine
from db.ingest import INGEST_LOCK, FilingInput, prune_documents
from db.ingest import ingest as ingest_filing
from graph.app import create_app
from graph.services import services_of
from graph.settings import Settings
from tests.servers import free_port

INGEST = """mutation($input: IngestFilingInput!) {
  ingestFiling(input: $input) { accessionNumber documentUrl } }"""
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF"


def ingest(
    client: TestClient, writer: str, number: str, ticker: str = "AAPL", **document: str
) -> dict[str, Any]:
    filing = {"ticker": ticker, "accessionNumber": number, "formType": "8-K",
              "filedAt": "2026-11-05T13:00:00Z", **document}  # fmt: skip
    body = {"query": INGEST, "variables": {"input": filing}}
    result: dict[str, Any] = client.post(
        "/graphql", json=body, headers={"authorization": f"Bearer {writer}"}
    ).json()
    return result


def stored_files(settings: Settings) -> list[Path]:
    root = settings.documents_directory
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def fetch(client: TestClient, url: str) -> Any:
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_text_and_bytes_round_trip(client: TestClient, writer: str) -> None:
    text = ingest(client, writer, "0000320193-26-500001", documentText="Item 8.01 Other Events")
    url = text["data"]["ingestFiling"]["documentUrl"]
    response = fetch(client, url)
    assert response.status_code == 200
    assert response.text == "Item 8.01 Other Events"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox;")  # no script runs

    encoded = base64.b64encode(PDF).decode()
    pdf = ingest(client, writer, "0000320193-26-500002", documentBase64=encoded,
                 documentContentType="application/pdf")  # fmt: skip
    response = fetch(client, pdf["data"]["ingestFiling"]["documentUrl"])
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(PDF).digest()
    assert response.headers["content-type"] == "application/pdf"


@pytest.mark.parametrize(
    "query",
    [
        "expires=%C2%B2&signature=x",  # a superscript two: isdigit(), and not int()
        "expires=1796693193&signature=%C3%A9",  # compare_digest takes ASCII only
        "expires=" + "9" * 5000 + "&signature=x",  # beyond int()'s digits
        "signature=x",
        "",
    ],
)
def test_malformed_links_are_refused_not_failed(client: TestClient, query: str) -> None:
    """Anyone can send these: each was a plain-text 500, with a trace in the log."""
    answer = client.get(f"/documents/filings/0000320193-26-500001/x?{query}")
    assert answer.status_code == 403


def test_tampered_and_expired_links_are_refused(client: TestClient, writer: str) -> None:
    body = ingest(client, writer, "0000320193-26-500003", documentText="secret")
    url = body["data"]["ingestFiling"]["documentUrl"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    later = int(query["expires"]) + 3600
    forged = f"{parts.path}?expires={later}&signature={query['signature']}"
    assert client.get(forged).status_code == 403
    assert client.get(f"{parts.path}?expires={query['expires']}&signature=x").status_code == 403
    other = parts.path.replace("500003", "500001")
    assert client.get(f"{other}?{parts.query}").status_code == 403
    documents = services_of(client.app).documents
    key = parts.path.removeprefix("/documents/")
    expired = documents.url(key, now=0)  # signed long ago
    assert fetch(client, expired).status_code == 403


def test_a_failed_filing_leaves_no_document(
    client: TestClient, writer: str, settings: Settings
) -> None:
    before = stored_files(settings)
    unknown = ingest(client, writer, "0000320193-26-500004", "NOPE", documentText="orphan?")
    assert unknown["data"] is None  # the document was written first, then removed
    assert stored_files(settings) == before
    first = ingest(client, writer, "0000320193-26-500005", documentText="v1")
    assert "errors" not in first
    before = stored_files(settings)
    conflict = ingest(client, writer, "0000320193-26-500005", documentText="v2")
    assert [e["extensions"]["code"] for e in conflict["errors"]] == ["CONFLICT"]
    assert stored_files(settings) == before
    assert fetch(client, first["data"]["ingestFiling"]["documentUrl"]).text == "v1"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"documentText": "a", "documentBase64": "YQ=="}, "documentText"),
        ({"documentBase64": "not base64!"}, "documentBase64"),
        ({"documentBase64": "YQ==", "documentContentType": "not a type"}, "documentContentType"),
        ({"documentContentType": "text/html"}, "documentContentType"),
    ],
)
def test_bad_documents_are_refused_by_field(
    client: TestClient, writer: str, settings: Settings, document: dict[str, str], field: str
) -> None:
    before = stored_files(settings)
    body = ingest(client, writer, "0000320193-26-500006", **document)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["extensions"]["fields"]
    assert stored_files(settings) == before


def test_documents_over_the_limit_are_refused(settings: Settings, writer: str) -> None:
    small = settings.replace(max_document_bytes=1000)
    with TestClient(create_app(small)) as client:
        body = ingest(client, writer, "0000320193-26-500007", documentText="x" * 1001)
    assert body["errors"][0]["extensions"]["fields"] == {"document": "is larger than 1000 bytes"}


def test_orphaned_documents_are_pruned(
    client: TestClient, writer: str, settings: Settings, database_url: str
) -> None:
    """A process that died between storing a document and committing its row left it."""
    kept = ingest(client, writer, "0000320193-26-500008", documentText="kept")
    documents = services_of(client.app).documents
    orphan = Document(b"left behind", "text/plain")
    asyncio.run(documents.put("filings/0000320193-26-500009/0123456789abcdef01234567", orphan))
    asyncio.run(documents.put("filings/0000320193-26-500010/0123456789abcdef01234567", orphan))
    long_ago = time.time() - 7200
    for path in stored_files(settings):
        if "500010" not in str(path):  # the newest orphan may still be committing
            os.utime(path, (long_ago, long_ago))

    async def prune() -> list[str]:
        engine = create_engine(database_url)
        try:
            return await prune_documents(engine, documents, timedelta(hours=1))
        finally:
            await engine.dispose()

    assert asyncio.run(prune()) == ["filings/0000320193-26-500009/0123456789abcdef01234567"]
    assert fetch(client, kept["data"]["ingestFiling"]["documentUrl"]).text == "kept"
    assert any("500010" in str(path) for path in stored_files(settings))


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on a free port."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_client(settings: Settings, s3: str) -> Iterator[TestClient]:
    bucket = "filings-docs"
    minio_client(s3, "test", "test", "us-east-1").make_bucket(bucket)
    public = s3.replace("127.0.0.1", "localhost")  # where clients reach the store
    configured = settings.replace(
        s3_endpoint=s3, s3_public_url=public, s3_access_key="test", s3_secret_key="test",
        s3_bucket=bucket,
    )  # fmt: skip
    with TestClient(create_app(configured)) as client:
        yield client


def objects(s3: str) -> list[str]:
    listed = minio_client(s3, "test", "test", "us-east-1").list_objects(
        "filings-docs", recursive=True
    )
    return sorted(str(item.object_name) for item in listed)


def test_s3_round_trip_through_presigned_links(s3_client: TestClient, writer: str) -> None:
    text = ingest(s3_client, writer, "0000320193-26-500101", documentText="Item 2.02")
    url = text["data"]["ingestFiling"]["documentUrl"]
    assert url.startswith("http://localhost:") and "X-Amz-Signature=" in url
    assert httpx.get(url).text == "Item 2.02"
    encoded = base64.b64encode(PDF).decode()
    pdf = ingest(s3_client, writer, "0000320193-26-500102", documentBase64=encoded,
                 documentContentType="application/pdf")  # fmt: skip
    response = httpx.get(pdf["data"]["ingestFiling"]["documentUrl"])
    assert response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    # (signature checks are the store's own; moto does not make them, MinIO and S3 do)


def test_s3_failed_filing_leaves_no_object(s3_client: TestClient, writer: str, s3: str) -> None:
    before = objects(s3)
    body = ingest(s3_client, writer, "0000320193-26-500103", "NOPE", documentText="orphan?")
    assert body["data"] is None
    assert objects(s3) == before


@asynccontextmanager
async def ingest_lock_held(database_url: str) -> AsyncIterator[None]:
    """Another session holds the ingestion lock meanwhile."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(select(func.pg_advisory_lock(INGEST_LOCK)))
            yield
            await conn.execute(select(func.pg_advisory_unlock(INGEST_LOCK)))
    finally:
        await engine.dispose()


async def kill_when_waiting(database_url: str) -> None:
    """Terminates the backend that waits for the ingestion lock (a dead pooled connection)."""
    engine = create_engine(database_url)
    waiting = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE wait_event = 'advisory' AND query LIKE '%pg_advisory_xact_lock%'"
    )
    try:
        for _ in range(100):  # 10 s at most
            async with engine.connect() as conn:
                if (await conn.execute(waiting)).first() is not None:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError("the retry never waited for the lock")
    finally:
        await engine.dispose()


RETRIED = FilingInput(
    ticker="AAPL", accession_number="0000320193-26-500201", form_type="8-K",
    filed_at=datetime(2026, 11, 5, 13, tzinfo=UTC), document=Document(b"first", "text/plain"),
)  # fmt: skip


async def fail_a_retry(database_url: str, documents: DocumentStore, failure: str) -> None:
    """Ingests RETRIED (once, for all failures), then again while another session holds the
    ingestion lock, and makes that retry fail."""
    timeout = timedelta(seconds=0.5 if failure == "statement timeout" else 30)
    engine = create_engine(database_url, statement_timeout=timeout)
    try:
        await ingest_filing(engine, RETRIED, None, documents)
        async with ingest_lock_held(database_url):
            retry = ingest_filing(engine, RETRIED, None, documents)
            with pytest.raises((TimeoutError, DBAPIError)):
                if failure == "client timeout":
                    await asyncio.wait_for(retry, 0.5)
                elif failure == "dead connection":
                    await asyncio.gather(retry, kill_when_waiting(database_url))
                else:
                    await retry
    finally:
        await engine.dispose()


@pytest.mark.parametrize("failure", ["client timeout", "dead connection", "statement timeout"])
def test_a_failed_retry_loses_no_document(
    client: TestClient, database_url: str, failure: str
) -> None:
    """An identical ingestion that fails (the client gives up, its connection dies, a
    statement times out) removes only what it stored itself: the filing's document stays,
    and no copy of a retry is left beside it."""
    documents = services_of(client.app).documents
    asyncio.run(fail_a_retry(database_url, documents, failure))
    number = RETRIED.accession_number
    (key,) = [key for key in documents.keys(timedelta(0)) if number in key]
    assert fetch(client, documents.url(key)).text == "first"

    async def succeed() -> tuple[str, bool]:
        engine = create_engine(database_url)
        try:
            return await ingest_filing(engine, RETRIED, None, documents)
        finally:
            await engine.dispose()

    assert asyncio.run(succeed()) == (number, False)
    assert [key for key in documents.keys(timedelta(0)) if number in key] == [key]
