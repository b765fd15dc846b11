"""Bearer tokens, roles and unit scope.

Tokens are JWTs with ``sub``, ``name``, ``unit`` and ``roles``. Production verifies RS256
against a JWKS URL or a configured public key; HS256 with a shared secret is accepted
only outside production, for the local demo and tests (``citydesk token`` mints them).
A principal acts on its own unit and the units below it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.orgtree import OrgTree
from shared.settings import Settings


class Role(StrEnum):
    CORRESPONDENT = "correspondent"  # 通讯员
    REVIEWER_SCHOOL = "reviewer_school"  # 初审
    REVIEWER_COUNTY = "reviewer_county"  # 复审
    REVIEWER_CITY = "reviewer_city"  # 终审
    LEADER = "leader"  # 分管领导
    OPINION_OFFICER = "opinion_officer"  # 舆情管理员
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    sub: str
    name: str
    unit: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class AuthError(Exception):
    pass


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def verify_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token and return who it names; raises :class:`AuthError`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(f"malformed token: {exc}") from exc
    alg = header.get("alg")
    key: Any
    if alg == "RS256":
        if settings.jwt_jwks_url:
            key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
        elif settings.jwt_public_key:
            key = settings.jwt_public_key
        else:
            raise AuthError("RS256 tokens need CITYDESK_JWT_JWKS_URL or CITYDESK_JWT_PUBLIC_KEY")
    elif alg == "HS256":
        if settings.environment == "production" or settings.jwt_hs256_secret is None:
            raise AuthError("HS256 tokens are accepted only in local and test environments")
        key = settings.jwt_hs256_secret.get_secret_value()
    else:
        raise AuthError(f"unsupported token algorithm {alg!r}")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "unit", "roles"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    _check_lifetime(claims, settings.jwt_max_lifetime_seconds)
    raw_roles = claims["roles"]
    # a list of names only: {"admin": 1} or "admin" must not read as the admin role
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise AuthError("token roles must be a list of role names")
    try:
        roles = frozenset(Role(r) for r in raw_roles)
    except ValueError as exc:
        raise AuthError(f"unknown role in token: {exc}") from exc
    return Principal(
        sub=str(claims["sub"]),
        name=str(claims.get("name", claims["sub"])),
        unit=str(claims["unit"]),
        roles=roles,
    )


def _check_lifetime(claims: dict[str, Any], maximum: int) -> None:
    """A token may live at most ``maximum`` seconds from its issue (or from now, when it
    names no issue time): a leaked long-lived token cannot be revoked by waiting."""
    issued = claims.get("iat")
    start = issued if isinstance(issued, int | float) else time.time()
    if claims["exp"] - start > maximum:
        raise AuthError(
            f"token lifetime exceeds the maximum of {maximum} seconds "
            "(CITYDESK_JWT_MAX_LIFETIME_SECONDS)"
        )


def mint_token(
    settings: Settings,
    *,
    sub: str,
    unit: str,
    roles: list[Role] | list[str],
    name: str | None = None,
    ttl_seconds: int = 7 * 24 * 3600,
) -> str:
    """A local HS256 token (demo and tests only)."""
    if settings.jwt_hs256_secret is None:
        raise AuthError("no local signing secret configured")
    now = int(time.time())
    claims = {
        "sub": sub,
        "name": name or sub,
        "unit": unit,
        "roles": [str(Role(r)) for r in roles],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, settings.jwt_hs256_secret.get_secret_value(), algorithm="HS256")


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller, or 401. Accepts a ``citydesk_token``
    cookie too, so the console's pages use the same tokens as the API."""
    token = credentials.credentials if credentials else request.cookies.get("citydesk_token")
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    settings: Settings = request.app.state.settings
    try:
        principal = verify_token(token, settings)
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    org: OrgTree = request.app.state.org
    if org.get(principal.unit) is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"token names unknown unit {principal.unit!r}"
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: Role) -> None:
    """403 unless the principal has one of ``roles`` (admins pass)."""
    if not principal.has(*roles, Role.ADMIN):
        wanted = ", ".join(r.value for r in roles)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs one of the roles: {wanted}")


def require_scope(principal: Principal, org: OrgTree, unit: str) -> None:
    """403 unless ``unit`` is the principal's unit or below it; 404 for unknown units."""
    if org.get(unit) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown unit {unit!r}")
    if not org.contains(principal.unit, unit):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"unit {unit!r} is outside your scope ({principal.unit!r} and the units below it)",
        )


def in_scope(principal: Principal, org: OrgTree, unit: str) -> bool:
    return org.contains(principal.unit, unit)
