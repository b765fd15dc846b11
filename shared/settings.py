"""Settings from environment variables (prefix ``CITYDESK_``): the same code on a laptop,
in CI and in Kubernetes."""

from __future__ import annotations

from typing import Literal, Self, TypeVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# what a laptop, the demo and the tests run with; production refuses every one of them
LOCAL_MONGO_URI = "mongodb://127.0.0.1:27117/?replicaSet=secantus"
LOCAL_S3_SECRET_KEY = "citydesk-local-secret"
LOCAL_JWT_ISSUER = "citydesk-local"
LOCAL_HS256_SECRET = "citydesk-local-development-secret-key!"


class UnsafeProduction(SystemExit):
    """Production settings that must not run: the process exits non-zero with the reasons
    (a SystemExit, so no handler swallows it and no traceback hides the message)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        reasons = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"CITYDESK_ENVIRONMENT=production refuses to start:\n{reasons}")


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
    # production talks to Kafka over TLS; clear text only with this explicit opt-in
    kafka_allow_plaintext: bool = False

    # Who writes on the bus: each producer signs with its own Ed25519 key, consumers check
    # the signature against the keyring (see shared/bus_auth.py). The local stack keeps a
    # key folder (keyring.yaml and <principal>.key); a deployment mounts the keyring and
    # gives each service its own key as a secret.
    bus_principal: str | None = None
    bus_signing_key: SecretStr | None = None
    bus_keyring_file: str | None = None
    bus_keys_dir: str | None = None

    # MongoDB: each service uses its own database, named after the service
    mongo_uri: str = LOCAL_MONGO_URI
    mongo_database: str | None = None
    # several deployments (a province's cities) can share one MongoDB cluster
    mongo_database_prefix: str = "citydesk"

    # S3 / MinIO
    s3_endpoint: str = "127.0.0.1:19000"
    s3_access_key: str = "citydesk"
    s3_secret_key: SecretStr = SecretStr(LOCAL_S3_SECRET_KEY)
    s3_secure: bool = False
    s3_region: str = "us-east-1"

    # Auth: RS256 via JWKS URL or a public key; HS256 only for local use (outside
    # production an unset secret becomes the local one, which production refuses)
    jwt_issuer: str = LOCAL_JWT_ISSUER
    jwt_audience: str = "citydesk"
    jwt_jwks_url: str | None = None
    jwt_public_key: str | None = None
    jwt_hs256_secret: SecretStr | None = None
    # a token living longer than this (exp - iat) is refused, whoever signed it
    jwt_max_lifetime_seconds: int = Field(default=31 * 24 * 3600, gt=0)

    # the org tree (city -> counties -> units)
    org_file: str | None = None

    # outbox relay
    outbox_poll_seconds: float = Field(default=0.2, gt=0)

    @property
    def database_name(self) -> str:
        return self.mongo_database or f"{self.mongo_database_prefix}_{self.service_name}"

    @model_validator(mode="after")
    def _local_secret_or_safe_production(self) -> Self:
        """Outside production the local signing secret; in production, the checks every
        process needs (a service's own checks follow in :meth:`refuse_unsafe_production`)."""
        if self.environment != "production":
            if self.jwt_hs256_secret is None:
                self.jwt_hs256_secret = SecretStr(LOCAL_HS256_SECRET)
            return self
        if problems := self._production_problems():
            raise UnsafeProduction(problems)
        return self

    def refuse_unsafe_production(self, *, kafka: bool, mongo: bool, s3: bool) -> None:
        """In production, exit with the reasons when what this service talks to runs on
        local defaults or in clear text; elsewhere nothing."""
        if self.environment != "production":
            return
        problems = self._production_problems()
        if kafka and self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            if not self.kafka_allow_plaintext:
                problems.append(
                    f"CITYDESK_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: use "
                    "SSL or SASL_SSL, or set CITYDESK_KAFKA_ALLOW_PLAINTEXT=true on a network "
                    "that needs no encryption"
                )
        if kafka and self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                problems.append("CITYDESK_KAFKA_SASL_USERNAME and _PASSWORD must be set for SASL")
        if kafka and (self.bus_signing_key is None or not self.bus_keyring_file):
            problems.append(
                "CITYDESK_BUS_SIGNING_KEY and CITYDESK_BUS_KEYRING_FILE must be set: every "
                "record is signed and every writer checked (a local key folder is for laptops)"
            )
        if kafka and self.bus_keys_dir:
            problems.append("CITYDESK_BUS_KEYS_DIR is the local stack's key folder: unset it")
        if mongo and self.mongo_uri == LOCAL_MONGO_URI:
            problems.append("CITYDESK_MONGO_URI is the local default: set the cluster's URI")
        if s3:
            if not self.s3_access_key:
                problems.append("CITYDESK_S3_ACCESS_KEY is empty")
            if self.s3_secret_key.get_secret_value() in ("", LOCAL_S3_SECRET_KEY):
                problems.append("CITYDESK_S3_SECRET_KEY is empty or the local default")
        if problems:
            raise UnsafeProduction(problems)

    def _production_problems(self) -> list[str]:
        problems = []
        if self.jwt_hs256_secret is not None:
            problems.append(
                "CITYDESK_JWT_HS256_SECRET is set: production accepts only RS256 tokens of the "
                "identity provider; unset it"
            )
        if not self.jwt_jwks_url and not self.jwt_public_key:
            problems.append("set CITYDESK_JWT_JWKS_URL or CITYDESK_JWT_PUBLIC_KEY")
        if self.jwt_issuer in ("", LOCAL_JWT_ISSUER):
            problems.append("CITYDESK_JWT_ISSUER is missing or the local issuer")
        if not self.jwt_audience:
            problems.append("CITYDESK_JWT_AUDIENCE is missing")
        # a service's own settings follow the same names: *_secret, *_password,
        # *_webhook_url beside *_webhook_secret, *_cookie_secure
        values = vars(self)
        for name, value in values.items():
            env = f"CITYDESK_{name.upper()}"
            if name.endswith(("_secret", "_secret_key", "_password")) and isinstance(
                value, SecretStr
            ):
                if not value.get_secret_value().strip():
                    problems.append(f"{env} is empty")
            if name.endswith("_webhook_url") and value:
                secret = name.removesuffix("_url") + "_secret"
                if secret in values and values[secret] is None:
                    problems.append(
                        f"{env} is set without CITYDESK_{secret.upper()}: webhooks would go "
                        "unsigned"
                    )
            if name.endswith("_cookie_secure") and value is not True:
                problems.append(f"{env} is false: the sign-in cookie must be Secure")
        return problems


S = TypeVar("S", bound=Settings)


def load_settings(service_name: str) -> Settings:
    """Settings for one service; environment variables override the defaults."""
    return Settings(service_name=service_name)


def specialise(settings: Settings | None, kind: type[S]) -> S:
    """A service's own settings class built from the shared ``settings`` (every value it
    holds, overrides included) plus the service's own fields from the environment."""
    if isinstance(settings, kind):
        return settings
    if settings is None:
        return kind()
    return kind(**dict(vars(settings)))
