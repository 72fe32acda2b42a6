"""GET /documents/{key}: a filing document, for whoever holds a genuine, unexpired link."""

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from db.documents import LocalDocuments


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
