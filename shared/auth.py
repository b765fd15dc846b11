"""Bearer tokens, roles and unit scope.

Tokens are JWTs with ``sub``, ``name``, ``unit`` and ``roles``. Production verifies RS256
against a JWKS URL or a configured public key; HS256 with a shared secret is accepted
only outside production, for the local demo and tests (``citydesk token`` mints them).
A principal acts on its own unit and the units below it.

The services take bearer tokens only: a cookie would ride along on any form another page of
the same site submits (the console keeps its sign-in cookie to itself and passes the token
on). A verified token is refused again when the revocation list names it
(:mod:`shared.revocation`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.orgtree import OrgTree
from shared.refusals import Refusal
from shared.revocation import RevocationList, revocation_collection
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
    # what a revocation names: the token's id and when it was issued (epoch seconds)
    jti: str | None = None
    issued_at: float | None = None

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
        jti=str(claims["jti"]) if claims.get("jti") else None,
        issued_at=float(claims["iat"]) if isinstance(claims.get("iat"), int | float) else None,
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
        "jti": uuid.uuid4().hex,  # so that this one token can be revoked
    }
    return jwt.encode(claims, settings.jwt_hs256_secret.get_secret_value(), algorithm="HS256")


_bearer = HTTPBearer(auto_error=False)


def _unauthenticated(detail: str) -> Refusal:
    return Refusal(
        401,
        "unauthenticated",
        "请先登录（令牌缺失、无效或已过期）",
        detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller, or 401. Only the Authorization header
    counts; a ``citydesk_token`` cookie is ignored (see the module's note)."""
    if credentials is None:
        raise _unauthenticated("missing bearer token")
    settings: Settings = request.app.state.settings
    try:
        principal = verify_token(credentials.credentials, settings)
    except AuthError as exc:
        raise _unauthenticated(str(exc)) from exc
    org: OrgTree = request.app.state.org
    if org.get(principal.unit) is None:
        raise Refusal(
            403,
            "token_unit_unknown",
            "令牌中的单位不在本市组织机构中，请联系管理员",
            f"token names unknown unit {principal.unit!r}",
        )
    revocations = _revocations(request)
    if revocations is not None and await revocations.is_revoked(
        sub=principal.sub, jti=principal.jti, issued_at=principal.issued_at
    ):
        raise Refusal(
            401, "token_revoked", "此令牌已被撤销，请重新登录", "the token has been revoked"
        )
    return principal


def _revocations(request: Request) -> RevocationList | None:
    """The revocation list of a service (built on first use from its MongoDB client); an
    app without a runtime (a unit test's) has none."""
    state = request.app.state
    found: RevocationList | None = getattr(state, "revocations", None)
    runtime = getattr(state, "runtime", None)
    if found is None and runtime is not None:
        found = RevocationList(
            revocation_collection(runtime.mongo, runtime.settings),
            refresh_seconds=runtime.settings.jwt_revocation_refresh_seconds,
        )
        state.revocations = found
    return found


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: Role) -> None:
    """403 unless the principal has one of ``roles`` (admins pass)."""
    if not principal.has(*roles, Role.ADMIN):
        wanted = ", ".join(r.value for r in roles)
        raise Refusal(
            403, "role_required", "您的角色无权执行此操作", f"this needs one of the roles: {wanted}"
        )


def city_admin(principal: CurrentPrincipal, request: Request) -> Principal:
    """FastAPI dependency for city-wide configuration (categories, review routes,
    sentiment rules, scoring rules, campaigns): an administrator of the city bureau
    itself. A county bureau's administrator acts on county-level settings only."""
    if not principal.has(Role.ADMIN):
        raise Refusal(403, "admin_required", "此操作需要管理员角色", "this needs the admin role")
    org: OrgTree = request.app.state.org
    if principal.unit != org.city.code:
        raise Refusal(
            403,
            "city_admin_required",
            "全市统一的配置（分类、审核流程、舆情规则、积分规则、专项任务）只能由市局管理员修改，"
            "区县管理员只能修改本区县的设置",
            f"city-wide configuration needs an admin of {org.city.code!r}, "
            f"not of {principal.unit!r}",
        )
    return principal


CityAdmin = Annotated[Principal, Depends(city_admin)]


def require_scope(principal: Principal, org: OrgTree, unit: str) -> None:
    """403 unless ``unit`` is the principal's unit or below it; 404 for unknown units."""
    if org.get(unit) is None:
        raise Refusal(404, "unknown_unit", f"没有编码为 {unit} 的单位", f"unknown unit {unit!r}")
    if not org.contains(principal.unit, unit):
        raise Refusal(
            403,
            "unit_out_of_scope",
            "该单位不在您的管辖范围内（只能查看和办理本单位及下属单位的事项）",
            f"unit {unit!r} is outside your scope ({principal.unit!r} and the units below it)",
        )


def in_scope(principal: Principal, org: OrgTree, unit: str) -> bool:
    return org.contains(principal.unit, unit)
