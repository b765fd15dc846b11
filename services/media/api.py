"""HTTP routes of the media service: upload, metadata with a presigned link, thumbnails
and listing, each inside the caller's unit scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from services.media import intake, service
from services.media.context import MediaRuntime
from services.media.models import MediaFilter, MediaRead, PupilsMark, ThumbnailSize, UploadResult
from shared.auth import CurrentPrincipal
from shared.paging import Page, PageQuery, page_query
from shared.refusals import ErrorBody

router = APIRouter(prefix="/media", tags=["media"])

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "unit"],
                    "properties": {
                        "unit": {"type": "string", "description": "unit code; send it first"},
                        "campaign": {"type": "string", "description": "optional campaign tag"},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG, WebP, HEIC/HEIF, AVIF, MP4 or MOV; "
                            "the kind (photo or video) follows from its type",
                        },
                    },
                }
            }
        },
    }
}


def media_runtime(request: Request) -> MediaRuntime:
    runtime: MediaRuntime = request.app.state.media
    return runtime


Runtime = Annotated[MediaRuntime, Depends(media_runtime)]


@router.post(
    "",
    response_model=UploadResult,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": UploadResult, "description": "the unit already uploaded this file"},
        413: {"model": ErrorBody, "description": "larger than the limit for its kind"},
        415: {"model": ErrorBody, "description": "not an accepted type, or not the type it claims"},
        422: {
            "model": ErrorBody,
            "description": "bad form, or a file that is refused (pixel flood, undecodable, "
            "a video that cannot be read and so cannot be cleaned)",
        },
        503: {
            "model": ErrorBody,
            "description": "object storage is down; retry after Retry-After seconds",
        },
    },
)
async def upload_media(
    request: Request, principal: CurrentPrincipal, runtime: Runtime, response: Response
) -> UploadResult:
    """Upload a photo or video (multipart: ``unit``, optional ``campaign``, ``file``)."""
    result = await intake.receive_upload(
        runtime=runtime,
        principal=principal,
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        stream=request.stream(),
    )
    if result.duplicate:
        response.status_code = 200
    return result


@router.get("", response_model=Page[MediaRead])
async def list_media(
    principal: CurrentPrincipal,
    runtime: Runtime,
    which: Annotated[MediaFilter, Query()],
    page: Annotated[PageQuery, Depends(page_query)],
) -> Page[MediaRead]:
    """Media of a unit and the units below it, newest first, a page at a time (ask again
    with ``cursor=next_cursor``)."""
    return await service.list_media(runtime=runtime, principal=principal, which=which, page=page)


@router.get("/{media_id}", response_model=MediaRead)
async def get_media(media_id: str, principal: CurrentPrincipal, runtime: Runtime) -> MediaRead:
    """Metadata and a short-lived presigned download link."""
    doc = await service.get_media(runtime=runtime, principal=principal, media_id=media_id)
    return service.read_with_link(runtime=runtime, doc=doc)


@router.get("/{media_id}/thumbnail", status_code=307, response_class=RedirectResponse)
async def get_thumbnail(
    media_id: str, principal: CurrentPrincipal, runtime: Runtime, size: ThumbnailSize = "small"
) -> RedirectResponse:
    """Redirect to a short-lived link to the small or medium rendition."""
    doc = await service.get_media(runtime=runtime, principal=principal, media_id=media_id)
    return RedirectResponse(service.thumbnail_link(runtime=runtime, doc=doc, size=size), 307)


@router.put("/{media_id}/pupils", response_model=MediaRead)
async def mark_pupils(
    media_id: str, mark: PupilsMark, principal: CurrentPrincipal, runtime: Runtime
) -> MediaRead:
    """Mark whether pupils can be recognised (可辨认学生) and record their guardians'
    consent; ``cleared_for_outside_media`` then says whether outside media may show it."""
    doc = await service.mark_pupils(
        runtime=runtime, principal=principal, media_id=media_id, mark=mark
    )
    return MediaRead.from_doc(doc)
