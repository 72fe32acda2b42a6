"""Filing documents at the edge: the store the settings describe, and GET /documents/{key}
for whoever holds a genuine, unexpired link."""

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from db.documents import DocumentStore, LocalDocuments, S3Documents
from graph.services import services_of
from graph.settings import Settings

# A document is what its writer sent, served on the API's origin: as its own media type (an
# HTML filing shows as HTML), but never sniffed as another, and in a sandbox (no script, no
# same-origin access): a writer's HTML or SVG runs nothing beside GraphiQL.
DOCUMENT_HEADERS = {
    "Cache-Control": "private",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:; "
    "style-src 'unsafe-inline'",
}


def document_store(settings: Settings) -> DocumentStore:
    """The S3-compatible store when one is configured, else the local directory."""
    if settings.s3_endpoint is None:
        return LocalDocuments(
            settings.documents_directory,
            settings.base_url,
            settings.document_url_ttl,
            settings.max_document_bytes,
        )
    secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else ""
    return S3Documents(
        settings.s3_endpoint,
        settings.s3_public_url,
        settings.s3_access_key or "",
        secret,
        settings.s3_bucket,
        settings.s3_region,
        settings.document_url_ttl,
        settings.max_document_bytes,
    )


async def document(request: Request) -> Response:
    documents = services_of(request.app).documents
    if not isinstance(documents, LocalDocuments):  # links point at the S3 store itself
        return PlainTextResponse("Documents are not served here.", 404)
    found = documents.open(
        request.path_params["key"],
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
    )
    if found is None:
        return PlainTextResponse("This link is not valid, or has expired.", 403)
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers=DOCUMENT_HEADERS)
