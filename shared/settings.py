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
    # the log keeps what replay needs: event topics keep everything (-1) because the scoring
    # rebuild and DLQ replay read them from the start; production sets 3 replicas, 2 in sync
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    kafka_retention_ms: int = Field(default=-1, ge=-1)
    # where the chart declares the topics (Strimzi KafkaTopic), services need no create rights
    kafka_create_topics: bool = True
    # Tansu holds a JoinGroup for about half the session timeout: 6 s joins in ~3 s
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=2000, ge=100)
    # a dead letter larger than this is stored bounded (coordinates, size, hash, first KB):
    # the producer's request limit is 1 MiB, and the broker may accept larger records
    kafka_dlq_max_bytes: int = Field(default=900_000, ge=4096)
    kafka_handler_retries: int = Field(default=3, ge=0)
    kafka_retry_backoff_seconds: float = Field(default=0.2, ge=0)

    # Who writes on the bus: each producer signs with its own Ed25519 key, consumers check
    # the signature against the keyring (see shared/bus_auth.py). The local stack keeps a
    # key folder (keyring.yaml and <principal>.key); a deployment mounts the keyring and
    # gives each service its own key as a secret.
    bus_principal: str | None = None
    bus_signing_key: SecretStr | None = None
    bus_keyring_file: str | None = None
    bus_keys_dir: str | None = None

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
