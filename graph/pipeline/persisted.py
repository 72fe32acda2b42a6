"""Persisted documents: one lookup for every dialect a client may speak.

- Apollo APQ: `extensions.persistedQuery {version: 1, sha256Hash}`, hash only (the document is
  looked up) or with `query` (checked against the hash, then stored in Redis for a while);
- Apollo persisted-query manifests and graphql-codegen's `persisted-documents.json` (trusted
  documents), whose ids arrive the same way;
- GraphQL over HTTP's `documentId: "sha256:<hex>"`.

In `trusted` mode only the manifests' documents run (the gateway, whose query plans are in no
manifest, is exempt). A document found once is kept per process, by hash, so later requests
skip Redis, and the pipeline's per-text cache then skips parsing, validation and costing.

APQ storage (the state Redis, which never evicts) is bounded three ways: what is stored is the
document normalized (graphql-core's `strip_ignored_characters`: no comments, no ignored
whitespace), at most `apq_max_bytes` of it; each client (API key, or IP when anonymous) may
have at most `apq_client_bytes` stored, counted until a TTL after its last store; and the
server's `maxmemory`. A document that cannot be stored (too large, over quota, Redis full or
away) still runs: the client sends it again next time, as APQ clients do.
"""

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
from graphql import (
    GraphQLSchema,
    get_operation_ast,
    parse,
    print_ast,
    separate_operations,
    strip_ignored_characters,
    validate,
)
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from graph.bounded import BoundedByBytes
from loaders.cache import CACHE_LOOKUPS, Breaker

log = logging.getLogger(__name__)
HITS = CACHE_LOOKUPS.labels("persisted", "hit")
MISSES = CACHE_LOOKUPS.labels("persisted", "miss")

NOT_STORED = Counter(
    "corpgraph_persisted_not_stored",
    "APQ documents that ran but were not stored, by reason: too_large, quota, redis",
    ["reason"],
)
for reason in ("too_large", "quota", "redis"):  # exposed at 0 from the start
    NOT_STORED.labels(reason)

SHA256 = re.compile(r"[0-9a-f]{64}")
KEY_PREFIX = "corpgraph:apq:"
QUOTA_PREFIX = "corpgraph:apq-bytes:"
KEPT_BYTES = 16_000_000  # documents kept per process, by hash
Mode = Literal["apq", "trusted"]

# KEYS[1]: the document, KEYS[2]: the bytes its client has stored. ARGV: the document, TTL in
# ms, its bytes, the client's quota. Returns 1 when it was stored already (its TTL renewed),
# 2 when stored now, 0 when over the quota (nothing written).
STORE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used + tonumber(ARGV[3]) > tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 2
"""


@dataclass(frozen=True)
class Document:
    """The document a request runs; `hash` when the request named it by its SHA-256 (then its
    answers may be cached), `sent` when its text came with the request."""

    text: str
    hash: str | None
    sent: bool


class PersistedError(Exception):
    """Why a request's document cannot be had: a code of DESIGN.md."""

    def __init__(
        self, code: str, message: str, extensions: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.extensions = code, dict(extensions or {})


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def not_found() -> PersistedError:
    return PersistedError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")


class PersistedDocuments:
    def __init__(
        self,
        mode: Mode,
        manifest: Mapping[str, str],
        redis: Redis | None,
        ttl: timedelta,
        max_bytes: int,
        client_bytes: int,
        breaker: Breaker | None = None,
    ) -> None:
        self.mode, self.manifest, self.redis = mode, manifest, redis
        self.breaker = breaker or Breaker()  # while open (Redis failed), Redis is not tried
        self.ttl, self.max_bytes, self.client_bytes = ttl, max_bytes, client_bytes
        self.script = redis.register_script(STORE_SCRIPT) if redis is not None else None
        self._kept: BoundedByBytes[str, str] = BoundedByBytes(KEPT_BYTES)
        self._listed = frozenset(manifest.values())

    def listed(self, query: object) -> bool:
        """In trusted mode: the text of a manifest's document (graphql-ws clients send the
        text, not the id)."""
        return self.mode == "trusted" and isinstance(query, str) and query in self._listed

    async def document(
        self, query: object, extensions: Mapping[str, Any] | None, document_id: object,
        trusted_caller: bool,
    ) -> Document:  # fmt: skip
        """The document to run, or a PersistedError saying why there is none."""
        wanted = requested_hash(extensions, document_id)
        if wanted is None:
            if not isinstance(query, str) or not query.strip():
                raise PersistedError("BAD_REQUEST", "`query` must be a non-empty string.")
            if self.mode == "trusted" and not trusted_caller:
                raise PersistedError(
                    "PERSISTED_QUERY_ID_REQUIRED",
                    "This server runs only trusted documents: send the id of one.",
                )
            return Document(query, None, sent=True)
        if query is not None and query != "":  # graphql-ws clients must send a string
            return Document(self._given(wanted, query, trusted_caller), wanted, sent=True)
        found = self.manifest.get(wanted) or self._kept.get(wanted)
        if found is None and self.mode == "apq":
            found = await self._stored(wanted)
            if found is not None:
                self._keep(wanted, found)
        (HITS if found is not None else MISSES).inc()
        if found is None:
            if self.mode == "trusted" and not trusted_caller:
                raise not_in_list()
            raise not_found()
        return Document(found, wanted, sent=False)

    def _given(self, wanted: str, query: object, trusted_caller: bool) -> str:
        if not isinstance(query, str) or sha256(query) != wanted:
            raise PersistedError(
                "PERSISTED_QUERY_HASH_MISMATCH",
                "The query's SHA-256 does not match the given hash.",
            )
        if self.mode == "trusted" and not trusted_caller and wanted not in self.manifest:
            raise not_in_list()
        return query

    async def remember(self, document: Document, client: str) -> None:
        """APQ: keep a document sent with its hash, normalized, once it has run (a document
        that does not parse, validate or may not run is never kept), within `client`'s quota."""
        wanted = document.hash
        if self.mode != "apq" or wanted is None or not document.sent or wanted in self._kept:
            return
        normalized = strip_ignored_characters(document.text)
        if len(normalized.encode()) > self.max_bytes:
            NOT_STORED.labels("too_large").inc()
            return
        if await self._store(wanted, normalized, client):
            self._keep(wanted, document.text)  # as sent: the text the pipeline has cached

    def _keep(self, wanted: str, document: str) -> None:
        self._kept.put(wanted, document, len(document))

    async def _stored(self, wanted: str) -> str | None:
        if self.redis is None or self.breaker.open:
            return None
        try:
            found = await self.redis.get(KEY_PREFIX + wanted)
        except RedisError as error:
            self.breaker.trip()
            log.warning("persisted documents: Redis read failed: %s", error)
            return None
        if isinstance(found, bytes):
            return found.decode()
        return found

    async def _store(self, wanted: str, document: str, client: str) -> bool:
        """Whether the document is stored (or no Redis is configured: kept per process)."""
        if self.script is None:
            return True
        if self.breaker.open:
            NOT_STORED.labels("redis").inc()
            return False
        keys = [KEY_PREFIX + wanted, QUOTA_PREFIX + client]
        ttl_ms = int(self.ttl.total_seconds() * 1000)
        try:
            stored = await self.script(
                keys=keys, args=[document, ttl_ms, len(document.encode()), self.client_bytes]
            )
        except RedisError as error:  # full (OOM) or away: the client sends it again next time
            if not isinstance(error, ResponseError):  # away, not full
                self.breaker.trip()
            NOT_STORED.labels("redis").inc()
            log.warning("persisted documents: Redis write failed: %s", error)
            return False
        if stored == 0:
            NOT_STORED.labels("quota").inc()
            return False
        return True


def not_in_list() -> PersistedError:
    return PersistedError(
        "PERSISTED_QUERY_NOT_IN_LIST", "This document is not in the trusted list."
    )


def requested_hash(extensions: Mapping[str, Any] | None, document_id: object) -> str | None:
    """The SHA-256 a request names (APQ's extension, or `documentId`), if it names one."""
    if document_id is not None:
        if not isinstance(document_id, str) or not document_id.startswith("sha256:"):
            raise PersistedError("BAD_REQUEST", '`documentId` must be "sha256:" and 64 hex digits.')
        return checked_hash(document_id.removeprefix("sha256:"))
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedError(
            "BAD_REQUEST", "`extensions.persistedQuery` takes version 1 and a sha256Hash."
        )
    return checked_hash(persisted.get("sha256Hash"))


def checked_hash(value: object) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value.lower()):
        raise PersistedError("BAD_REQUEST", "A document hash is 64 hexadecimal digits.")
    return value.lower()


def load_manifests(paths: Iterable[Path]) -> dict[str, str]:
    """Apollo persisted-query manifests and graphql-codegen's persisted documents, by id;
    an id that is not its document's SHA-256 stops the server from starting."""
    documents: dict[str, str] = {}
    for path in paths:
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
            entries = {op["id"]: op["body"] for op in data["operations"]}
        elif isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            entries = {key.removeprefix("sha256:"): value for key, value in data.items()}
        else:
            raise ValueError(f"{path}: neither an Apollo manifest nor persisted documents")
        for key, body in entries.items():
            if sha256(body) != key.lower():
                raise ValueError(f"{path}: {key} is not the SHA-256 of its document")
            documents[key.lower()] = body
    return documents


def build_manifest(sources: Iterable[Path], schema: GraphQLSchema) -> dict[str, Any]:
    """An Apollo persisted-query manifest of the operations in `.graphql` files (each with the
    fragments it uses, printed canonically), every one validated against the schema."""
    operations = []
    for path in sorted(sources):
        document = parse(path.read_text())
        errors = validate(schema, document)
        if errors:
            raise ValueError(f"{path}: {errors[0].message}")
        for name, separated in separate_operations(document).items():
            operation = get_operation_ast(separated, name)
            if not name or operation is None:
                raise ValueError(f"{path}: every persisted operation needs a name")
            body = print_ast(separated)
            kind = operation.operation.value
            operations.append({"id": sha256(body), "name": name, "type": kind, "body": body})
    names = [operation["name"] for operation in operations]
    if len(set(names)) != len(names):
        raise ValueError("two persisted operations share a name")
    return {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
