"""Filing documents: in any S3-compatible store (MinIO in production), whose presigned links
clients follow directly, or in a local directory (the embedded default), served by corpgraph
itself behind links of its own.

A local link names the document and when it expires, signed with HMAC-SHA256 under a key kept
beside the documents (so every process of one installation signs alike); it works until it
expires, and any change to it is refused.
"""

import asyncio
import base64
import hashlib
import hmac
import io
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

from minio import Minio

KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,200}")
EXPIRES = re.compile(r"[0-9]{1,12}")  # Unix seconds
SIGNATURE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # base64url, unpadded


@dataclass(frozen=True)
class Document:
    data: bytes
    content_type: str


class DocumentStore(Protocol):
    max_bytes: int  # the largest document accepted

    async def put(self, key: str, document: Document) -> None: ...

    async def delete(self, key: str) -> None: ...

    def url(self, key: str, now: float | None = None) -> str: ...

    def keys(self, older_than: timedelta) -> list[str]: ...


def minio_client(url: str, access_key: str, secret_key: str, region: str) -> Minio:
    parts = urlsplit(url)
    # with the region given, presigning is local arithmetic: no request to the endpoint
    return Minio(parts.netloc, access_key, secret_key, secure=parts.scheme == "https",
                 region=region)  # fmt: skip


class S3Documents:
    """A bucket of an S3-compatible store; links are presigned for `public_url`, the address
    clients use (it may differ from the one corpgraph reaches the store at)."""

    def __init__(self, endpoint: str, public_url: str | None, access_key: str, secret_key: str,
                 bucket: str, region: str, ttl: timedelta, max_bytes: int) -> None:  # fmt: skip
        self.client = minio_client(endpoint, access_key, secret_key, region)
        self.signer = minio_client(public_url or endpoint, access_key, secret_key, region)
        self.bucket, self.ttl, self.max_bytes = bucket, ttl, max_bytes

    async def put(self, key: str, document: Document) -> None:
        data = io.BytesIO(document.data)
        await asyncio.to_thread(self.client.put_object, self.bucket, key, data,
                                len(document.data), content_type=document.content_type)  # fmt: skip

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    def url(self, key: str, now: float | None = None) -> str:
        when = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        return self.signer.presigned_get_object(self.bucket, key, self.ttl, request_date=when)

    def keys(self, older_than: timedelta) -> list[str]:
        cutoff = datetime.now(UTC) - older_than
        listed = self.client.list_objects(self.bucket, prefix="filings/", recursive=True)
        return sorted(
            str(item.object_name)
            for item in listed
            if item.last_modified is not None and item.last_modified < cutoff
        )


def signing_key(directory: Path) -> bytes:
    """The installation's signing key, made on first use (every process reads the same)."""
    path = directory / ".signing-key"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as new:  # only one process creates it
            new.write(secrets.token_bytes(32))
    except FileExistsError:
        pass
    return path.read_bytes()


class LocalDocuments:
    def __init__(self, directory: Path, public_url: str, ttl: timedelta, max_bytes: int) -> None:
        self.directory, self.public_url, self.ttl = directory, public_url.rstrip("/"), ttl
        self.max_bytes = max_bytes  # the largest document accepted
        self.key = signing_key(directory)

    def path(self, key: str) -> Path:
        if not KEY.fullmatch(key) or ".." in key:
            raise ValueError(f"not a document key: {key!r}")
        return self.directory / key

    async def put(self, key: str, document: Document) -> None:
        await asyncio.to_thread(self._write, self.path(key), document)

    @staticmethod
    def _write(path: Path, document: Document) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, data in (
            (path, document.data),
            (type_path(path), document.content_type.encode()),
        ):
            partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
            partial.write_bytes(data)
            os.replace(partial, target)  # readers never see half a document

    async def delete(self, key: str) -> None:
        path = self.path(key)
        for target in (path, type_path(path)):
            target.unlink(missing_ok=True)

    def keys(self, older_than: timedelta) -> list[str]:
        """Keys of the documents stored more than `older_than` ago."""
        cutoff = time.time() - older_than.total_seconds()
        return sorted(
            str(path.relative_to(self.directory))
            for path in self.directory.rglob("*")
            if path.is_file()
            and not path.name.startswith(".")
            and path.suffix != ".type"
            and path.stat().st_mtime < cutoff
        )

    def url(self, key: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl.total_seconds())
        signature = self.sign(key, expires)
        return f"{self.public_url}/documents/{quote(key)}?expires={expires}&signature={signature}"

    def sign(self, key: str, expires: int) -> str:
        digest = hmac.new(self.key, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def open(self, key: str, expires: str, signature: str) -> tuple[Path, str] | None:
        """The document's path and media type, if the link is genuine and still valid."""
        if not (EXPIRES.fullmatch(expires) and SIGNATURE.fullmatch(signature)):
            return None  # (isdigit() takes "²", which int() refuses; compare_digest, non-ASCII)
        if int(expires) < time.time() or not hmac.compare_digest(
            self.sign(key, int(expires)), signature
        ):
            return None
        try:
            path = self.path(key)
        except ValueError:
            return None
        if not path.is_file():
            return None
        return path, type_path(path).read_text()


def type_path(path: Path) -> Path:
    return path.with_name(path.name + ".type")
