"""Forms are accepted from the console's own pages only.

Two checks on every request that changes something. The ``Origin`` (or, without one, the
``Referer``) must be the console's own: a page of another origin, even one of the same site
(another port, a sibling host under the same domain) is refused. And a signed-in form must
carry a token derived from the sign-in token itself, HMAC(token, purpose): a page that
cannot read the console's pages or its HttpOnly cookie cannot know it.

Why not a double-submit cookie (``starlette-csrf``, ``fastapi-csrf-protect``): a page of the
same site can set a cookie for the console's host ("cookie tossing") and then submit the
matching value, which is exactly the same-site attack this guards against; and
``starlette-csrf`` reads the token from a header only, which a plain HTML form cannot send.
A token bound to the session needs no cookie of its own and no server state.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request

from services.console.models import COOKIE

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_PURPOSE = b"citydesk-console-form"


class CrossSiteRefused(Exception):
    """A form from elsewhere, or without the token of this sign-in."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def form_token(session_token: str) -> str:
    """The token every form of this sign-in carries."""
    return hmac.new(session_token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def _own_origin(request: Request, public_origin: str | None) -> set[str]:
    host = request.headers.get("host", "")
    own = {f"http://{host}", f"https://{host}"}
    if public_origin:
        own.add(public_origin.rstrip("/"))
    return own


def _origin_of(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}"
    # a sandboxed frame or a privacy setting sends "null": no proof of where it came from
    return origin


async def guard(request: Request) -> None:
    """FastAPI dependency on every console route; unsafe methods only."""
    if request.method in SAFE_METHODS:
        return
    origin = _origin_of(request)
    public = getattr(request.app.state.settings, "console_public_origin", None)
    # a browser always names the origin of a form post; a script on a server names none
    # and has no person's cookie to ride on
    if origin is not None and origin not in _own_origin(request, public):
        raise CrossSiteRefused(f"form posted from {origin}, not from the console")
    session = request.cookies.get(COOKIE)
    if not session or request.url.path == "/login":
        # not signed in: nothing to act with (the sign-in form is guarded by its origin)
        return
    sent = request.headers.get(HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith("application/x-www-form-urlencoded"):
        value = (await request.form()).get(FIELD)
        sent = value if isinstance(value, str) else None
    if sent is None or not hmac.compare_digest(sent, form_token(session)):
        raise CrossSiteRefused("the form carries no valid token of this sign-in")
