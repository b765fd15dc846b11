"""The review service's refusals: the shared :class:`Refusal`, with the codes its clients
already read (``not_found``, ``forbidden``, ``conflict``, ``invalid_request``), a Chinese
message for people and the English detail the console's wording table matches."""

from __future__ import annotations

from shared.refusals import Refusal


def not_found(message: str, detail: str) -> Refusal:
    return Refusal(404, "not_found", message, detail)


def forbidden(message: str, detail: str) -> Refusal:
    return Refusal(403, "forbidden", message, detail)


def conflict(message: str, detail: str) -> Refusal:
    return Refusal(409, "conflict", message, detail)


def invalid(message: str, detail: str) -> Refusal:
    return Refusal(422, "invalid_request", message, detail)


CHANGED_MEANWHILE = (
    "该稿件刚被他人处理，请刷新后重试",
    "someone else changed this case at the same moment; reload it",
)
