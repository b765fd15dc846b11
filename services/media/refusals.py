"""Every way the media service refuses a request, each with its stable code, its HTTP
status, a Chinese message for the person uploading and the English detail for developers
(the shared :class:`~shared.refusals.Refusal`, answered by the service builder's handler).

Refusals of an upload also say which kind of file it was and how the upload metric counts
the outcome, so the route counts every refused upload in one place."""

from __future__ import annotations

from typing import ClassVar

from shared.events import MediaKind
from shared.refusals import Refusal

KIND_NAMES = {MediaKind.PHOTO.value: "照片", MediaKind.VIDEO.value: "视频"}
ACCEPTED_ZH = "照片请用 JPEG、PNG、WebP、HEIC/HEIF 或 AVIF，视频请用 MP4 或 MOV"


class UploadRefusal(Refusal):
    """An upload refused; ``kind`` and ``outcome`` label the upload metric."""

    OUTCOMES: ClassVar[dict[int, str]] = {413: "too_large", 415: "wrong_type", 503: "storage_down"}

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str,
        *,
        kind: str = "unknown",
        outcome: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, detail, headers=headers)
        self.kind = kind
        self.outcome = outcome or self.OUTCOMES.get(status, "invalid")

    def of_kind(self, kind: str) -> None:
        """Count the refusal for a file whose kind is known by now."""
        if self.kind == "unknown":
            self.kind = kind


def megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):g} MB" if count >= 1024 * 1024 else f"{count} bytes"


# ---- the file's type (415) -----------------------------------------------------------
def type_not_accepted(detail: str) -> UploadRefusal:
    return UploadRefusal(415, "media_type_not_accepted", f"不支持此文件类型：{ACCEPTED_ZH}", detail)


def type_unstated() -> UploadRefusal:
    return UploadRefusal(
        415,
        "media_type_unstated",
        "无法判断文件类型，请保留文件的扩展名（如 .jpg、.mp4）后上传",
        "say what the file is: a content type or a file name extension",
    )


def type_mismatch(detail: str, *, kind: str = "unknown") -> UploadRefusal:
    return UploadRefusal(
        415,
        "media_type_mismatch",
        "文件内容与它声明的类型不符（可能改过扩展名），请上传手机或相机导出的原始文件",
        detail,
        kind=kind,
    )


# ---- the file's size (413) and the form (422) ---------------------------------------
def too_large(limit: int, kind: str) -> UploadRefusal:
    return UploadRefusal(
        413,
        "media_too_large",
        f"{KIND_NAMES.get(kind, '文件')}超过 {megabytes(limit)} 的大小上限，请压缩后重新上传",
        f"file is larger than the {megabytes(limit)} limit for a {kind}",
        kind=kind,
    )


def upload_too_large(limit: int) -> UploadRefusal:
    return UploadRefusal(
        413,
        "media_too_large",
        f"上传内容超过 {megabytes(limit)} 的大小上限",
        f"the upload is larger than the largest limit ({limit} bytes)",
    )


def bad_form(detail: str) -> UploadRefusal:
    """A body that is not the upload form this service reads (not multipart, malformed,
    a part without a name, a field too long, a second file): a client's mistake."""
    return UploadRefusal(
        422,
        "media_form_invalid",
        "上传表单有误：请用表单（multipart/form-data）上传一个文件",
        detail,
    )


def no_file() -> UploadRefusal:
    return UploadRefusal(
        422, "media_file_missing", "请选择要上传的照片或视频", "the form has no 'file' part"
    )


def incomplete() -> UploadRefusal:
    return UploadRefusal(
        422,
        "media_upload_incomplete",
        "文件没有传完整，请重新上传",
        "the upload ended before the file was complete",
    )


def empty_file(kind: str) -> UploadRefusal:
    return UploadRefusal(
        422, "media_file_empty", "上传的文件是空的", "the file is empty", kind=kind
    )


# ---- the unit and the campaign (422, 404, 403) --------------------------------------
def unit_missing(kind: str) -> UploadRefusal:
    return UploadRefusal(
        422,
        "media_unit_missing",
        "请选择照片或视频所属的单位",
        "the form needs a 'unit' field",
        kind=kind,
    )


def unit_invalid() -> UploadRefusal:
    return UploadRefusal(
        422,
        "media_unit_invalid",
        "单位编码的格式不正确",
        "unit must be a unit code such as 'dh-syxx'",
    )


def unknown_unit(unit: str) -> UploadRefusal:
    return UploadRefusal(404, "unknown_unit", f"没有编码为 {unit} 的单位", f"unknown unit {unit!r}")


def unit_out_of_scope(unit: str, own: str) -> UploadRefusal:
    message = "该单位不在您的管辖范围内，不能为它上传"
    return UploadRefusal(403, "unit_out_of_scope", message, _outside(f"unit {unit!r} is", own))


def _outside(what: str, own: str) -> str:
    return f"{what} outside your scope ({own!r} and the units below it)"


def campaign_invalid() -> UploadRefusal:
    return UploadRefusal(
        422,
        "media_campaign_invalid",
        "专项任务编号只能由字母、数字、“_”“.”“-”组成",
        "campaign must be a code of letters, digits, '_', '.', '-'",
    )


# ---- what the file holds (422, outcome "refused") -----------------------------------
def _cannot_clean(kind: str, code: str, message: str, detail: str) -> UploadRefusal:
    return UploadRefusal(422, code, message, detail, kind=kind, outcome="refused")


def pixel_flood(detail: str) -> UploadRefusal:
    why = f"image refused as a pixel flood: {detail}"
    return _cannot_clean(
        "photo", "media_pixel_flood", "图片像素过多，无法处理，请缩小尺寸后重新上传", why
    )


def image_undecodable(detail: str) -> UploadRefusal:
    message = "图片已损坏或无法读取，请重新导出后上传"
    why = f"the image could not be decoded: {detail}"
    return _cannot_clean("photo", "media_image_undecodable", message, why)


def video_unreadable(detail: str) -> UploadRefusal:
    """Refused rather than stored as sent: its location could not be removed."""
    message = "无法读取该视频，也就无法清除其中的位置等信息，因此没有保存；请重新导出后上传"
    why = f"the video could not be read, so its metadata cannot be removed: {detail}"
    return _cannot_clean("video", "media_video_unreadable", message, why)


# ---- storage (503) -------------------------------------------------------------------
def storage_down(detail: str, *, kind: str, retry_after: int) -> UploadRefusal:
    return UploadRefusal(
        503,
        "media_storage_unavailable",
        "文件存储暂时不可用，请稍后重新上传",
        f"{detail}; try again later",
        kind=kind,
        headers={"Retry-After": str(retry_after)},
    )


# ---- reading stored media -------------------------------------------------------------
def media_not_found(media_id: str) -> Refusal:
    return Refusal(404, "media_not_found", "没有这张照片或这段视频", f"no media {media_id!r}")


def media_out_of_scope(media_id: str, unit: str, own: str) -> Refusal:
    message = "这张照片或这段视频属于您管辖范围以外的单位"
    detail = _outside(f"media {media_id!r} belongs to unit {unit!r},", own)
    return Refusal(403, "media_out_of_scope", message, detail)


def no_thumbnail(media_id: str, reason: str) -> Refusal:
    return Refusal(
        404,
        "media_no_thumbnail",
        "这段视频没有可用的封面图",
        f"media {media_id!r} has {reason}",
    )
