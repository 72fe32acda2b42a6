"""Filing documents at the edge: the store the settings describe, and GET /documents/{key}
for whoever holds a genuine, unexpired link."""

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from db.documents import LocalDocuments
from graph.settings import Settings


def local_documents(settings: Settings) -> LocalDocuments:
    return LocalDocuments(
        settings.documents_directory,
        settings.base_url,
        settings.document_url_ttl,
        settings.max_document_bytes,
    )


async def document(request: Request) -> Response:
    documents: LocalDocuments = request.app.state.documents
    found = documents.open(
        request.path_params["key"],
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
    )
    if found is None:
        return PlainTextResponse("This link is not valid, or has expired.", 403)
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private"})
