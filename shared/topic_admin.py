"""Topics created with the settings the log needs, and a check that the topics the
scoring rebuild reads from the start keep every record."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared import topics as tp
from shared.bus import client_security
from shared.observability import TOPIC_RETENTION_FINITE
from shared.settings import Settings

log = logging.getLogger(__name__)


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": str(settings.kafka_retention_ms),
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
    }


async def ensure_topics(settings: Settings) -> None:
    """Create every contract topic and its dead-letter topic if missing (where the
    deployment declares them instead, ``kafka_create_topics`` is off)."""
    if not settings.kafka_create_topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}-admin",
        **client_security(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = topic_configs(settings)
        wanted = []
        for topic in tp.ALL:
            for name, partitions in ((topic.name, settings.kafka_partitions), (topic.dlq, 1)):
                if name not in existing:
                    wanted.append(
                        NewTopic(name, partitions, settings.kafka_replication_factor, None, configs)
                    )
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


def _finite(configs: dict[str, str]) -> bool:
    retention = configs.get("retention.ms")
    size = configs.get("retention.bytes")
    compacted = "compact" in (configs.get("cleanup.policy") or "")
    time_bound = retention not in (None, "-1") and not compacted
    size_bound = size not in (None, "-1") and not compacted
    return time_bound or size_bound


async def truncating_topics(settings: Settings) -> list[str]:
    """The topics the scoring rebuild reads from the start whose retention would delete
    old records; each is logged and exported as ``citydesk_topic_retention_finite``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}-admin",
        **client_security(settings),
    )
    await admin.start()
    finite: list[str] = []
    try:
        names = [t.name for t in tp.ALL if t.rebuild_reads]
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name = resource[3]
                configs = {entry[0]: entry[1] for entry in resource[4]}
                is_finite = _finite(configs)
                TOPIC_RETENTION_FINITE.labels(settings.service_name, name).set(int(is_finite))
                if is_finite:
                    finite.append(name)
                    log.error(
                        "topic %s deletes old records (retention.ms=%s, retention.bytes=%s): "
                        "a scoring rebuild would no longer equal the live service",
                        name, configs.get("retention.ms"), configs.get("retention.bytes"),
                    )  # fmt: skip
    finally:
        await admin.close()
    return finite
