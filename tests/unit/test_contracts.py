"""Event contracts: every event survives a JSON round trip, the exported JSON Schemas
are what the models say, and every topic names its key."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import events as ev
from shared import topics as tp
from tests.unit.samples import event_of

CONTRACTS = Path(__file__).parents[2] / "docs" / "contracts"


def sample_events() -> list[ev.Envelope]:
    return [event_of(topic) for topic in tp.ALL]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_every_event_survives_a_json_round_trip(event: ev.Envelope) -> None:
    model = type(event)
    again = model.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.type == model.EVENT_TYPE and again.version == model.EVENT_VERSION


def test_every_topic_carries_one_contract_and_names_its_key() -> None:
    samples = {type(e): e for e in sample_events()}
    for topic in tp.ALL:
        assert topic.model in samples, topic.name
        assert topic.key(samples[topic.model]), topic.name
    story = samples[ev.StorySubmittedEvent]
    assert tp.STORY_SUBMITTED.key(story) == story.payload.story_id.encode()
    assert tp.OPINION_FLAGGED.key(samples[ev.OpinionFlaggedEvent]) == b"i-1"  # the incident
    assert tp.INTAKE_STORIES.key(samples[ev.IntakeStoryEvent]) == b"dh"


def test_exported_json_schemas_match_the_models() -> None:
    """docs/contracts is what county integrators read: it must equal the code."""
    from citydesk.cli import event_schemas

    schemas = event_schemas()
    assert set(schemas) == {p.stem for p in CONTRACTS.glob("*.v*.json")}
    for name, schema in schemas.items():
        assert json.loads((CONTRACTS / f"{name}.json").read_text()) == schema, name
    for topic in tp.ALL:
        registry = json.loads((CONTRACTS / "registry" / f"{topic.name}.json").read_text())
        assert registry == topic.model.model_json_schema(mode="serialization")


def test_asyncapi_document_lists_every_topic_with_its_payload() -> None:
    from citydesk.cli import asyncapi_document

    document = asyncapi_document()
    for topic in tp.ALL:
        assert topic.name in document["channels"] and topic.dlq in document["channels"]
    schemas = document["components"]["schemas"]
    assert "StorySubmitted" in schemas and "IntakeOpinion" in schemas
    committed = json.loads((CONTRACTS / "asyncapi.json").read_text())
    assert committed == document


def test_a_service_documents_the_payload_headers_and_key_of_what_it_reads() -> None:
    from shared.contracts import asyncapi_document

    document = asyncapi_document(
        title="review", description="", writes=[tp.STORY_REVIEWED], reads=[tp.STORY_SUBMITTED]
    )
    operations = document["operations"]
    assert operations["read_story_submitted"]["action"] == "receive"
    assert operations["write_story_reviewed"]["action"] == "send"
    message = document["components"]["messages"]["story_submitted"]
    assert message["payload"] == {"$ref": "#/components/schemas/StorySubmittedEvent"}
    assert message["correlationId"]["location"] == "$message.header#/correlation-id"
    headers = message["headers"]["properties"]
    assert {"correlation-id", "citydesk-signer", "citydesk-signature"} <= set(headers)
    assert "correlation_id" not in headers
    assert "story id" in message["bindings"]["kafka"]["key"]["description"]
    assert "murmur2" in message["x-partitioner"]
    assert "dlq-reason" in str(document["channels"]["story.submitted.dlq"])


def test_a_county_story_valid_by_the_schema_is_not_refused_for_a_schema_rule() -> None:
    """The schema states the categories and length bounds the submission service checks."""
    import jsonschema

    from citydesk.cli import event_schemas
    from services.submission.service.rules import read_seed

    schema = event_schemas()["intake.story.v1"]
    event = json.loads(
        next(e for e in sample_events() if e.type == "intake.story").model_dump_json()
    )
    categories, rules = read_seed()
    event["payload"]["category"] = categories.categories[0].name
    event["payload"]["title"] = "标" * rules.title_min_chars
    event["payload"]["body"] = "文" * rules.body_min_chars
    jsonschema.validate(event, schema)
    for field, value in (
        ("category", "不存在的栏目"),
        ("title", "标" * (rules.title_min_chars - 1)),
        ("body", "文" * (rules.body_max_chars + 1)),
    ):
        wrong = {**event, "payload": {**event["payload"], field: value}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


def test_an_event_of_the_wrong_type_or_with_unknown_fields_is_refused() -> None:
    event = sample_events()[0]
    data = json.loads(event.model_dump_json())
    with pytest.raises(ValidationError):
        ev.StorySubmittedEvent.model_validate({**data, "type": "story.reviewed"})
    with pytest.raises(ValidationError):
        ev.StorySubmittedEvent.model_validate({**data, "surprise": 1})
    with pytest.raises(ValidationError):
        ev.IntakeStoryEvent.model_validate(
            {**data, "type": "intake.story", "county": None, "event_id": str(uuid.uuid4())}
        )
