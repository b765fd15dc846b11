"""Production refuses to start unsafe: local secrets and addresses, clear-text Kafka, HS256,
a missing issuer or audience, unsigned webhooks and a cookie without Secure each stop a
service with the reason; the chart's production values start every service and its
schema refuses a development environment without the explicit flag; the test environment
keeps its local defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.console.settings import ConsoleSettings
from services.sentiment.settings import SentimentSettings
from shared.settings import LOCAL_HS256_SECRET, Settings, UnsafeProduction
from tests.deploy.tools import KUBERNETES_VERSION, REPO, deploy_tools

SAFE: dict[str, Any] = {
    "environment": "production",
    "jwt_issuer": "https://login.example.org/realms/citydesk",
    "jwt_audience": "citydesk",
    "jwt_jwks_url": "https://login.example.org/realms/citydesk/certs",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "citydesk",
    "kafka_sasl_password": "a-long-generated-password",
    "mongo_uri": "mongodb://db-0.cluster:27017/?replicaSet=rs0&tls=true",
    "s3_access_key": "media-writer",
    "s3_secret_key": "a-long-generated-s3-secret",
    "bus_signing_key": "the-service-s-own-ed25519-seed",
    "bus_keyring_file": "/etc/citydesk/bus/keyring.yaml",
}
EVERYTHING = {"kafka": True, "mongo": True, "s3": True}


@pytest.fixture(autouse=True)
def no_citydesk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test passes: none of the suite's CITYDESK_* variables."""
    for name in list(os.environ):
        if name.startswith("CITYDESK_"):
            monkeypatch.delenv(name)


def refusal(**changes: Any) -> str:
    with pytest.raises(UnsafeProduction) as refused:
        Settings(**(SAFE | changes)).refuse_unsafe_production(**EVERYTHING)
    assert refused.value.code != 0
    return str(refused.value)


def test_safe_production_settings_start() -> None:
    settings = Settings(**SAFE)
    settings.refuse_unsafe_production(**EVERYTHING)
    assert settings.jwt_hs256_secret is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"s3_secret_key": "citydesk-local-secret"},
            "CITYDESK_S3_SECRET_KEY is empty or the local",
        ),
        ({"s3_secret_key": ""}, "CITYDESK_S3_SECRET_KEY is empty"),
        ({"s3_access_key": ""}, "CITYDESK_S3_ACCESS_KEY is empty"),
        ({"mongo_uri": "mongodb://127.0.0.1:27117/?replicaSet=secantus"}, "CITYDESK_MONGO_URI"),
        ({"kafka_security_protocol": "PLAINTEXT"}, "CITYDESK_KAFKA_ALLOW_PLAINTEXT=true"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "is SASL_PLAINTEXT: use SSL or SASL_SSL"),
        ({"kafka_sasl_password": None}, "CITYDESK_KAFKA_SASL_USERNAME and _PASSWORD"),
        ({"kafka_sasl_password": ""}, "CITYDESK_KAFKA_SASL_PASSWORD is empty"),
        ({"jwt_hs256_secret": LOCAL_HS256_SECRET}, "CITYDESK_JWT_HS256_SECRET is set"),
        ({"jwt_issuer": "citydesk-local"}, "CITYDESK_JWT_ISSUER is missing or the local"),
        ({"jwt_issuer": ""}, "CITYDESK_JWT_ISSUER is missing"),
        ({"jwt_audience": ""}, "CITYDESK_JWT_AUDIENCE is missing"),
        ({"jwt_jwks_url": None}, "set CITYDESK_JWT_JWKS_URL or CITYDESK_JWT_PUBLIC_KEY"),
        ({"bus_signing_key": None}, "CITYDESK_BUS_SIGNING_KEY and CITYDESK_BUS_KEYRING_FILE"),
        ({"bus_keyring_file": None}, "CITYDESK_BUS_SIGNING_KEY and CITYDESK_BUS_KEYRING_FILE"),
        ({"bus_keys_dir": "/work/.stack/bus-keys"}, "CITYDESK_BUS_KEYS_DIR is the local"),
    ],
)
def test_each_unsafe_setting_stops_production_with_its_reason(
    changes: dict[str, Any], reason: str
) -> None:
    assert reason in refusal(**changes)


def test_clear_text_kafka_starts_only_with_the_explicit_opt_in() -> None:
    opted_in = Settings(
        **SAFE | {"kafka_security_protocol": "PLAINTEXT"}, kafka_allow_plaintext=True
    )
    opted_in.refuse_unsafe_production(**EVERYTHING)


def test_a_service_is_judged_only_on_what_it_uses() -> None:
    # the console reaches neither Kafka, MongoDB nor S3: their local defaults do not matter
    console = ConsoleSettings(
        **{k: v for k, v in SAFE.items() if not k.startswith(("kafka", "mongo", "s3"))},
        console_cookie_secure=True,
    )
    console.refuse_unsafe_production(kafka=False, mongo=False, s3=False)
    with pytest.raises(UnsafeProduction, match="CITYDESK_S3_SECRET_KEY"):
        console.refuse_unsafe_production(kafka=False, mongo=False, s3=True)


def test_a_cookie_without_secure_and_an_unsigned_webhook_stop_production() -> None:
    with pytest.raises(UnsafeProduction, match="CITYDESK_CONSOLE_COOKIE_SECURE is false"):
        ConsoleSettings(**SAFE, console_cookie_secure=False)
    with pytest.raises(UnsafeProduction, match="CITYDESK_SENTIMENT_WEBHOOK_SECRET: webhooks"):
        SentimentSettings(**SAFE, sentiment_webhook_url="https://alerts.example.org/hook")
    with pytest.raises(UnsafeProduction, match="CITYDESK_SENTIMENT_WEBHOOK_SECRET is empty"):
        SentimentSettings(
            **SAFE,
            sentiment_webhook_url="https://alerts.example.org/hook",
            sentiment_webhook_secret="  ",
        )
    signed = SentimentSettings(
        **SAFE,
        sentiment_webhook_url="https://alerts.example.org/hook",
        sentiment_webhook_secret="a-long-generated-webhook-secret",
    )
    signed.refuse_unsafe_production(**EVERYTHING)


def test_the_reasons_are_given_together() -> None:
    message = refusal(
        s3_secret_key="citydesk-local-secret",
        mongo_uri="mongodb://127.0.0.1:27117/?replicaSet=secantus",
        kafka_security_protocol="PLAINTEXT",
    )
    assert message.startswith("CITYDESK_ENVIRONMENT=production refuses to start:")
    assert message.count("\n  - ") == 3


def test_local_and_test_environments_keep_their_defaults() -> None:
    for environment in ("local", "test"):
        settings = Settings(environment=environment)
        assert settings.jwt_hs256_secret is not None
        assert settings.jwt_hs256_secret.get_secret_value() == LOCAL_HS256_SECRET
        settings.refuse_unsafe_production(**EVERYTHING)
        ConsoleSettings(environment=environment, console_cookie_secure=False)


def test_a_production_service_with_a_default_secret_exits_non_zero_with_the_reason(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYDESK_")} | {
        f"CITYDESK_{key.upper()}": str(value) for key, value in SAFE.items()
    }
    env["CITYDESK_S3_SECRET_KEY"] = "citydesk-local-secret"
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", "from citydesk.cli import app; app()", "serve", "media"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "CITYDESK_ENVIRONMENT=production refuses to start:" in done.stderr
    assert "CITYDESK_S3_SECRET_KEY is empty or the local default" in done.stderr
    assert "Traceback" not in done.stderr


# ---- the chart ---------------------------------------------------------------------
USES_S3 = {"media"}


def _service_settings(service: str, env: dict[str, str]) -> Settings:
    """The settings class the service itself builds, read from ``env``."""
    try:
        module = import_module(f"services.{service}.settings")
    except ModuleNotFoundError:
        return Settings(service_name=service)
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Settings) and value is not Settings
    ]
    (settings_class,) = classes
    return settings_class(service_name=service)


@pytest.mark.parametrize("values", [None, "production.yaml", "single-node.yaml"])
def test_the_charts_production_values_start_every_service(
    monkeypatch: pytest.MonkeyPatch, values: str | None
) -> None:
    tools = deploy_tools()
    chart = REPO / "deploy" / "helm" / "citydesk"
    extra = ["--values", str(REPO / "deploy" / "helm" / "examples" / values)] if values else []
    rendered = subprocess.run(
        [str(tools.helm), "template", "citydesk", str(chart), "--namespace", "citydesk",
         "--kube-version", KUBERNETES_VERSION, *extra],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    checked = set()
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            service = container["command"][2]
            env = {
                item["name"]: item.get("value")
                # a secret's value is whatever the operator stored: a generated one here
                or f"generated-{item['valueFrom']['secretKeyRef']['name']}"
                for item in container["env"]
            }
            if env.get("CITYDESK_ENVIRONMENT") != "production":
                continue
            for name in list(os.environ):
                if name.startswith("CITYDESK_"):
                    monkeypatch.delenv(name)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            settings = _service_settings(service, env)
            backend = service != "console"
            settings.refuse_unsafe_production(kafka=backend, mongo=backend, s3=service in USES_S3)
            checked.add(service)
    assert checked >= {"submission", "media", "review", "scoring", "sentiment", "console"}


def test_the_chart_refuses_a_development_environment_without_the_explicit_flag() -> None:
    tools = deploy_tools()
    chart = str(REPO / "deploy" / "helm" / "citydesk")

    def template(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tools.helm), "template", "citydesk", chart, "--kube-version",
             KUBERNETES_VERSION, *options],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    for environment in ("local", "test"):
        refused = template("--set", f"environment={environment}")
        assert refused.returncode != 0 and "developmentMode" in refused.stderr
    development = template("--set", "environment=local", "--set", "developmentMode=true")
    assert development.returncode == 0, development.stderr
