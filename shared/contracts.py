"""The bus as an integrator reads it: one AsyncAPI 3.0 document per service (and one for
the whole bus) built from :mod:`shared.topics`, with the real payload of every topic a
service writes or reads, the headers, the key and the partitioner, the dead-letter
channels, and the business rules a JSON Schema can carry.

Written here rather than taken from FastStream's generator: the subscribers take raw
records (so that nothing is decoded before the dead-letter wrapper), which leaves the
generated document without consumed payloads, and it documents a ``correlation_id``
header the services do not send.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic.json_schema import models_json_schema

from shared import topics as tp
from shared.bus_auth import SIGNATURE_HEADER, SIGNER_HEADER

KEY_OF = {
    tp.STORY_SUBMITTED.name: "the story id",
    tp.STORY_REVIEWED.name: "the story id",
    tp.STORY_PUBLISHED.name: "the story id",
    tp.OPINION_FLAGGED.name: "the incident id (a story screening: the story id)",
    tp.MEDIA_STORED.name: "the media id",
    tp.INTAKE_STORIES.name: "the county code (the envelope's `county`)",
    tp.INTAKE_OPINIONS.name: "the county code (the envelope's `county`)",
}

PARTITIONER = (
    "murmur2 over the key bytes, as the Java client, kafkajs and aiokafka do by default; "
    "librdkafka clients (confluent-kafka, kcat) must set `partitioner=murmur2_random`, "
    "otherwise their crc32 default sends the same county to a different partition than "
    "other producers and its records can be read out of order"
)

SOURCES_KNOWN = ["百姓呼声", "投诉直通车", "微博", "hot_search", "media_enquiry", "media_in_depth"]


@dataclass(frozen=True)
class IntakeRules:
    """What the submission service checks of a county story, as the schema states it."""

    categories: list[str]
    title_chars: tuple[int, int]
    body_chars: tuple[int, int]


def event_headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["content-type", SIGNER_HEADER, SIGNATURE_HEADER],
        "properties": {
            "content-type": {"type": "string", "const": "application/json"},
            "event-type": {"type": "string", "description": "the envelope's `type`"},
            "event-version": {"type": "string", "description": "the envelope's `version`"},
            "correlation-id": {
                "type": "string",
                "description": "the envelope's `correlation_id`; the one correlation header",
            },
            SIGNER_HEADER: {
                "type": "string",
                "description": "the writer's principal: a service name or `county-<code>`",
            },
            SIGNATURE_HEADER: {
                "type": "string",
                "description": "base64 Ed25519 signature of b'citydesk-bus-v1\\n' + topic + "
                "b'\\n' + hex(sha256(key)) + b'\\n' + value, made with the writer's key",
            },
        },
    }


def dlq_headers_schema() -> dict[str, Any]:
    reason_kinds = ["unauthorised", "invalid", "rejected", "handler_error"]
    # every header is a string: Kafka headers are bytes, the desk writes them as UTF-8 text
    headers: dict[str, dict[str, Any]] = {
        "dlq-reason": {"description": "why, in English"},
        "dlq-reason-kind": {"enum": reason_kinds},
        "dlq-source-topic": {},
        "dlq-source-partition": {},
        "dlq-source-offset": {},
        "dlq-service": {"description": "the service that refused it"},
        "dlq-at": {"format": "date-time"},
        "dlq-bounded": {
            "const": "true",
            "description": "the record was too large to copy: the value is JSON with its "
            "coordinates, size, sha256 and first KB (head_base64)",
        },
    }
    return {
        "type": "object",
        "description": "the original record's headers, plus:",
        "properties": {name: {"type": "string", **schema} for name, schema in headers.items()},
    }


def refine(schemas: dict[str, Any], rules: IntakeRules | None) -> None:
    """Put into the payload schemas the rules a schema can state, so that a record valid
    by the schema is not refused for a reason the schema could have said."""
    story = schemas.get("IntakeStory")
    if story is not None and rules is not None:
        props = story["properties"]
        props["category"] = {"type": "string", "enum": rules.categories, "title": "Category"}
        props["title"].update(minLength=rules.title_chars[0], maxLength=rules.title_chars[1])
        props["body"].update(minLength=rules.body_chars[0], maxLength=rules.body_chars[1])
        props["unit"]["description"] = "a unit of the envelope's county (from the org tree)"
    opinion = schemas.get("IntakeOpinion")
    if opinion is not None:
        opinion["properties"]["source"]["examples"] = SOURCES_KNOWN
        opinion["properties"]["source"]["description"] = (
            "the column or platform; hot_search, media_enquiry, media_in_depth and superior "
            "raise an item's severity"
        )


def payload_schemas(rules: IntakeRules | None) -> dict[str, Any]:
    """Every topic's envelope schema with the definitions it refers to, refined."""
    _, top = models_json_schema(
        [(topic.model, "serialization") for topic in tp.ALL],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = copy.deepcopy(top.get("$defs", {}))
    refine(schemas, rules)
    return schemas


def asyncapi_document(
    *,
    title: str,
    description: str,
    writes: list[tp.Topic] | None = None,
    reads: list[tp.Topic] | None = None,
    rules: IntakeRules | None = None,
) -> dict[str, Any]:
    """AsyncAPI 3.0 for the topics one service writes and reads (all: the whole bus)."""
    writes = list(tp.ALL) if writes is None else writes
    reads = list(tp.ALL) if reads is None else reads
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in {t.name: t for t in [*writes, *reads]}.values():
        message_name = topic.name.replace(".", "_")
        messages[message_name] = {
            "name": topic.model.__name__,
            "title": topic.name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{topic.model.__name__}"},
            "headers": event_headers_schema(),
            "correlationId": {"location": "$message.header#/correlation-id"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": KEY_OF[topic.name]},
                    "bindingVersion": "0.5.0",
                }
            },
            "x-partitioner": PARTITIONER,
            "x-writers": list(topic.writers),
        }
        channels[topic.name] = {
            "address": topic.name,
            "description": topic.description,
            "messages": {message_name: {"$ref": f"#/components/messages/{message_name}"}},
            "bindings": {"kafka": {"topic": topic.name, "bindingVersion": "0.5.0"}},
        }
        channels[topic.dlq] = {
            "address": topic.dlq,
            "description": f"Records of {topic.name} a consumer refused, once each, with why.",
            "messages": {
                "dead_letter": {
                    "name": "DeadLetter",
                    "payload": {"description": "the original bytes, or a bounded JSON copy"},
                    "headers": dlq_headers_schema(),
                }
            },
        }
        ref = {"$ref": f"#/channels/{topic.name}"}
        message_ref = {"$ref": f"#/channels/{topic.name}/messages/{message_name}"}
        if topic in writes:
            operations[f"write_{message_name}"] = {
                "action": "send", "channel": ref, "messages": [message_ref],
            }  # fmt: skip
        if topic in reads:
            operations[f"read_{message_name}"] = {
                "action": "receive", "channel": ref, "messages": [message_ref],
            }  # fmt: skip
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "kafka-bootstrap:9093",
                "protocol": "kafka-secure",
                "description": "SASL_SSL with SCRAM-SHA-512: one user per service and county",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": payload_schemas(rules)},
    }
