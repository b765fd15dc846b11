"""The Docker path of the test fixtures: Kafka, MongoDB (replica set) and MinIO through
testcontainers, for developers who have a Docker engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def container_stack() -> Iterator[dict[str, str]]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer
    from testcontainers.mongodb import MongoDbContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka,
        MongoDbContainer("mongo:7.0").with_command("--replSet rs0 --bind_ip_all") as mongo,
        MinioContainer("minio/minio:RELEASE.2024-06-13T22-53-53Z") as minio,
    ):
        mongo.exec(["mongosh", "--quiet", "--eval", "rs.initiate()"])
        host = mongo.get_container_host_ip()
        port = mongo.get_exposed_port(27017)
        config = minio.get_config()
        yield {
            "CITYDESK_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
            "CITYDESK_MONGO_URI": f"mongodb://{host}:{port}/?directConnection=true",
            "CITYDESK_S3_ENDPOINT": config["endpoint"],
            "CITYDESK_S3_ACCESS_KEY": config["access_key"],
            "CITYDESK_S3_SECRET_KEY": config["secret_key"],
            "CITYDESK_S3_SECURE": "false",
        }
