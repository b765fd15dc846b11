"""Tokens, roles and unit scope."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.auth import (
    AuthError,
    CityAdmin,
    CurrentPrincipal,
    Role,
    mint_token,
    require_role,
    require_scope,
    verify_token,
)
from shared.orgtree import example_city
from shared.refusals import Refusal, install_refusals
from shared.settings import Settings

SETTINGS = Settings(environment="test")
ORG = example_city()


def scoped_app(settings: Settings = SETTINGS) -> FastAPI:
    app = FastAPI()
    install_refusals(app)
    app.state.settings = settings
    app.state.org = ORG

    @app.post("/units/{unit}/stories")
    def submit(unit: str, principal: CurrentPrincipal) -> dict[str, str]:
        require_role(principal, Role.CORRESPONDENT, Role.REVIEWER_COUNTY)
        require_scope(principal, ORG, unit)
        return {"unit": unit, "by": principal.sub}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_county_token_acts_on_its_own_schools_but_not_another_countys() -> None:
    client = TestClient(scoped_app())
    token = mint_token(SETTINGS, sub="dh-reviewer", unit="dh", roles=[Role.REVIEWER_COUNTY])
    assert client.post("/units/dh-syxx/stories", headers=bearer(token)).status_code == 200
    refused = client.post("/units/xs-syxx/stories", headers=bearer(token))
    assert refused.status_code == 403
    assert "outside your scope" in refused.json()["detail"]


def test_a_school_token_cannot_act_on_its_county_or_a_sibling_school() -> None:
    token = mint_token(SETTINGS, sub="c1", unit="dh-syxx", roles=[Role.CORRESPONDENT])
    client = TestClient(scoped_app())
    assert client.post("/units/dh-syxx/stories", headers=bearer(token)).status_code == 200
    assert client.post("/units/dh/stories", headers=bearer(token)).status_code == 403
    assert client.post("/units/dh-dyxx/stories", headers=bearer(token)).status_code == 403


def test_the_city_reaches_every_unit_including_directly_run_schools() -> None:
    assert ORG.contains("jc", "jc-yz") and ORG.contains("jc", "qs-syxx")
    assert not ORG.contains("dh", "jc-yz")


def test_missing_wrong_or_expired_tokens_get_401_and_missing_roles_403() -> None:
    client = TestClient(scoped_app())
    assert client.post("/units/dh-syxx/stories").status_code == 401
    assert client.post("/units/dh-syxx/stories", headers=bearer("nonsense")).status_code == 401
    forged = mint_token(
        Settings(jwt_hs256_secret="another-secret-that-is-long-enough!!"),  # type: ignore[arg-type]
        sub="x", unit="jc", roles=[Role.ADMIN],
    )  # fmt: skip
    assert client.post("/units/dh-syxx/stories", headers=bearer(forged)).status_code == 401
    expired = mint_token(SETTINGS, sub="x", unit="dh", roles=[Role.CORRESPONDENT], ttl_seconds=-5)
    assert client.post("/units/dh-syxx/stories", headers=bearer(expired)).status_code == 401
    officer = mint_token(SETTINGS, sub="x", unit="dh", roles=[Role.OPINION_OFFICER])
    assert client.post("/units/dh-syxx/stories", headers=bearer(officer)).status_code == 403


def rs256_production() -> tuple[rsa.RSAPrivateKey, Settings]:
    """A signing key and production settings that verify tokens with its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    production = Settings(
        environment="production",
        jwt_public_key=public,
        jwt_issuer="https://login.example.org/realms/citydesk",
    )
    return key, production


def rs256_token(key: rsa.RSAPrivateKey, settings: Settings, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": "city-officer", "unit": "jc", "roles": ["opinion_officer"],
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": now, "exp": now + 60,
    }  # fmt: skip
    return jwt.encode(claims | changes, key, algorithm="RS256")


def test_production_accepts_rs256_with_a_configured_key_and_refuses_local_hs256() -> None:
    key, production = rs256_production()
    assert production.jwt_hs256_secret is None
    token = rs256_token(key, production)
    principal = verify_token(token, production)
    assert principal.unit == "jc" and principal.has(Role.OPINION_OFFICER)
    local = mint_token(SETTINGS, sub="x", unit="jc", roles=[Role.ADMIN])
    with pytest.raises(AuthError, match="only in local"):
        verify_token(local, production)


def test_require_scope_says_404_for_unknown_units() -> None:
    token = mint_token(SETTINGS, sub="c", unit="jc", roles=[Role.ADMIN])
    principal = verify_token(token, SETTINGS)
    with pytest.raises(Refusal) as error:
        require_scope(principal, ORG, "nowhere")
    assert error.value.status == 404 and error.value.code == "unknown_unit"


def test_a_token_living_longer_than_the_maximum_is_refused() -> None:
    key, production = rs256_production()
    now = int(time.time())
    century = rs256_token(key, production, exp=now + 100 * 365 * 86400)
    with pytest.raises(AuthError, match="lifetime exceeds the maximum"):
        verify_token(century, production)
    # without an issue time, the lifetime counts from now
    claims = jwt.decode(century, options={"verify_signature": False})
    del claims["iat"]
    no_iat = jwt.encode(claims | {"exp": now + 40 * 86400}, key, algorithm="RS256")
    with pytest.raises(AuthError, match="lifetime exceeds the maximum"):
        verify_token(no_iat, production)
    month = rs256_token(key, production, exp=now + 30 * 86400)
    assert verify_token(month, production).unit == "jc"
    # a locally minted token is held to the same maximum
    long_local = mint_token(
        SETTINGS, sub="x", unit="dh", roles=[Role.CORRESPONDENT], ttl_seconds=365 * 86400
    )
    with pytest.raises(AuthError, match="lifetime"):
        verify_token(long_local, SETTINGS)


@pytest.mark.parametrize("roles", [{"admin": 1}, "admin", [["admin"]], [1], 1])
def test_roles_must_be_a_list_of_role_names(roles: object) -> None:
    key, production = rs256_production()
    with pytest.raises(AuthError, match="roles must be a list of role names"):
        verify_token(rs256_token(key, production, roles=roles), production)
    with pytest.raises(AuthError, match="unknown role"):
        verify_token(rs256_token(key, production, roles=["admin", "superuser"]), production)


def test_the_api_takes_the_bearer_header_and_never_the_consoles_cookie() -> None:
    client = TestClient(scoped_app())
    token = mint_token(SETTINGS, sub="c1", unit="dh-syxx", roles=[Role.CORRESPONDENT])
    client.cookies.set("citydesk_token", token)
    assert client.post("/units/dh-syxx/stories").status_code == 401
    assert client.post("/units/dh-syxx/stories", headers=bearer(token)).status_code == 200


def city_config_app() -> FastAPI:
    app = scoped_app()

    @app.put("/config")
    def replace(principal: CityAdmin) -> dict[str, str]:
        return {"by": principal.sub}

    return app


@pytest.mark.parametrize(
    ("unit", "roles", "status", "code"),
    [
        ("jc", [Role.ADMIN], 200, None),
        ("dh", [Role.ADMIN], 403, "city_admin_required"),
        ("dh-syxx", [Role.ADMIN], 403, "city_admin_required"),
        ("jc", [Role.REVIEWER_CITY, Role.OPINION_OFFICER], 403, "admin_required"),
    ],
)
def test_city_wide_configuration_needs_an_admin_of_the_city_itself(
    unit: str, roles: list[Role], status: int, code: str | None
) -> None:
    client = TestClient(city_config_app())
    token = mint_token(SETTINGS, sub="someone", unit=unit, roles=roles)
    answer = client.put("/config", headers=bearer(token))
    assert answer.status_code == status
    if code:
        assert answer.json()["code"] == code
        assert any("\u4e00" <= ch <= "\u9fff" for ch in answer.json()["message"])


def test_every_minted_token_has_its_own_id_for_revocation() -> None:
    first = verify_token(mint_token(SETTINGS, sub="a", unit="dh", roles=[]), SETTINGS)
    second = verify_token(mint_token(SETTINGS, sub="a", unit="dh", roles=[]), SETTINGS)
    assert first.jti and second.jti and first.jti != second.jti
    assert first.issued_at is not None
