"""Settings from environment variables (prefix ``CITYDESK_``): the same code on a laptop,
in CI and in Kubernetes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYDESK_", env_file=None, extra="ignore")

    service_name: str = "citydesk"
    environment: Literal["local", "test", "production"] = "local"
    log_level: str = "INFO"
    # an API-only replica leaves the consumers to worker replicas (they scale apart)
    run_consumers: bool = True

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ca_file: str | None = None
    kafka_partitions: int = Field(default=3, ge=1)
    kafka_handler_retries: int = Field(default=3, ge=0)
    kafka_retry_backoff_seconds: float = Field(default=0.2, ge=0)

    # MongoDB: each service uses its own database, named after the service
    mongo_uri: str = "mongodb://127.0.0.1:27117/?replicaSet=secantus"
    mongo_database: str | None = None
    # several deployments (a province's cities) can share one MongoDB cluster
    mongo_database_prefix: str = "citydesk"

    # S3 / MinIO
    s3_endpoint: str = "127.0.0.1:19000"
    s3_access_key: str = "citydesk"
    s3_secret_key: SecretStr = SecretStr("citydesk-local-secret")
    s3_secure: bool = False
    s3_region: str = "us-east-1"

    # Auth: RS256 via JWKS URL or a public key; HS256 only for local use
    jwt_issuer: str = "citydesk-local"
    jwt_audience: str = "citydesk"
    jwt_jwks_url: str | None = None
    jwt_public_key: str | None = None
    jwt_hs256_secret: SecretStr | None = SecretStr("citydesk-local-development-secret-key!")

    # the org tree (city -> counties -> units)
    org_file: str | None = None

    # outbox relay
    outbox_poll_seconds: float = Field(default=0.2, gt=0)

    @property
    def database_name(self) -> str:
        return self.mongo_database or f"{self.mongo_database_prefix}_{self.service_name}"


def load_settings(service_name: str) -> Settings:
    """Settings for one service; environment variables override the defaults."""
    return Settings(service_name=service_name)
