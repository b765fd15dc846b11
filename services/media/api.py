"""HTTP routes of the media service: upload, metadata with a presigned link, thumbnails
and listing, each inside the caller's unit scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from services.media import listing, service
from services.media.models import MediaRead, PupilsMark, ThumbnailSize, UploadResult
from services.media.service import MediaContext, MediaProblem
from shared.auth import CurrentPrincipal
from shared.events import MediaKind
from shared.paging import Page, PageQuery, page_query

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


def media_context(request: Request) -> MediaContext:
    context: MediaContext = request.app.state.media
    return context


Context = Annotated[MediaContext, Depends(media_context)]


def problem_response(problem: MediaProblem) -> JSONResponse:
    return JSONResponse({"detail": problem.detail}, problem.status, headers=problem.headers)


@router.post(
    "",
    response_model=UploadResult,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": UploadResult, "description": "the unit already uploaded this file"},
        413: {"description": "larger than the limit for its kind"},
        415: {"description": "not an accepted type, or not the type it claims"},
        422: {
            "description": "bad form, or a file that is refused (pixel flood, undecodable, "
            "a video that cannot be read and so cannot be cleaned)"
        },
        503: {"description": "object storage is down; retry after Retry-After seconds"},
    },
)
async def upload_media(
    request: Request, principal: CurrentPrincipal, context: Context, response: Response
) -> UploadResult:
    """Upload a photo or video (multipart: ``unit``, optional ``campaign``, ``file``)."""
    result = await service.receive_upload(
        context=context,
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
    context: Context,
    page: Annotated[PageQuery, Depends(page_query)],
    unit: Annotated[str | None, Query(description="this unit and those below it")] = None,
    campaign: Annotated[str | None, Query(max_length=64)] = None,
    kind: MediaKind | None = None,
) -> Page[MediaRead]:
    """Media of a unit and the units below it, newest first, a page at a time (``limit``
    1–200 and the previous page's ``next_cursor``)."""
    return await listing.list_media(
        runtime=context.runtime, principal=principal, unit=unit, campaign=campaign, kind=kind,
        page=page,
    )  # fmt: skip


@router.get("/{media_id}", response_model=MediaRead)
async def get_media(media_id: str, principal: CurrentPrincipal, context: Context) -> MediaRead:
    """Metadata and a short-lived presigned download link."""
    doc = await service.get_media(context=context, principal=principal, media_id=media_id)
    return service.read_with_link(context=context, doc=doc)


@router.get("/{media_id}/thumbnail", status_code=307, response_class=RedirectResponse)
async def get_thumbnail(
    media_id: str, principal: CurrentPrincipal, context: Context, size: ThumbnailSize = "small"
) -> RedirectResponse:
    """Redirect to a short-lived link to the small or medium rendition."""
    doc = await service.get_media(context=context, principal=principal, media_id=media_id)
    return RedirectResponse(service.thumbnail_link(context=context, doc=doc, size=size), 307)


@router.put("/{media_id}/pupils", response_model=MediaRead)
async def mark_pupils(
    media_id: str, mark: PupilsMark, principal: CurrentPrincipal, context: Context
) -> MediaRead:
    """Mark whether pupils can be recognised (可辨认学生) and record their guardians'
    consent; ``cleared_for_outside_media`` then says whether outside media may show it."""
    doc = await service.mark_pupils(
        context=context, principal=principal, media_id=media_id, mark=mark
    )
    return MediaRead.from_doc(doc)
