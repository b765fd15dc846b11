"""Who may write what on the bus, checked without a server: signatures, topic writers,
a county's own intake, bounded dead letters, the redelivery count, and the topic readers
the chart's ACLs are built from."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date
from importlib import import_module
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from citydesk.stack import local_principals
from shared import events as ev
from shared import topics as tp
from shared.bus_auth import Keyring, UnauthorisedWriter, local_signer, write_local_keys
from shared.deadletters import Delivery, bounded_copy
from shared.kafka import Refused, _Subscription, admit, make_bus
from shared.mongo import make_client
from shared.settings import Settings


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bus-keys")
    write_local_keys(folder, local_principals())
    return folder


def intake(county: str, unit: str) -> ev.IntakeStoryEvent:
    return ev.IntakeStoryEvent.build(
        ev.IntakeStory(
            external_id="e-1", unit=unit, title="县区报送的稿件", body="正文" * 40,
            category="教育教学", event_date=date(2026, 11, 1), author="portal",
        ),
        producer="portal", county=county,
    )  # fmt: skip


def delivery(topic: str, value: bytes, headers: dict[str, str], key: bytes = b"k") -> Delivery:
    return Delivery(topic=topic, partition=0, offset=7, key=key, raw=value, headers=headers)


def signed_delivery(keys: Path, principal: str, topic: tp.Topic, event: ev.Envelope) -> Delivery:
    value = event.model_dump_json().encode()
    key = topic.key(event)
    headers = local_signer(keys, principal).headers(topic.name, key, value)
    return delivery(topic.name, value, headers, key)


def test_a_signature_holds_only_for_its_topic_key_and_value(keys: Path) -> None:
    ring = Keyring.load(keys / "keyring.yaml")
    headers = local_signer(keys, "review").headers("story.reviewed", b"s-1", b"{}")
    assert ring.verify("story.reviewed", b"s-1", b"{}", headers) == "review"
    for topic, key, value in (
        ("story.published", b"s-1", b"{}"),
        ("story.reviewed", b"s-2", b"{}"),
        ("story.reviewed", b"s-1", b"{ }"),
    ):
        with pytest.raises(UnauthorisedWriter, match="does not match"):
            ring.verify(topic, key, value, headers)
    with pytest.raises(UnauthorisedWriter, match="unsigned"):
        ring.verify("story.reviewed", b"s-1", b"{}", {})
    with pytest.raises(UnauthorisedWriter, match="unknown signer"):
        ring.verify("story.reviewed", b"s-1", b"{}", {**headers, "citydesk-signer": "intruder"})


def test_a_service_writes_only_its_own_topics(keys: Path) -> None:
    ring = Keyring.load(keys / "keyring.yaml")
    story = intake("xs", "xs-dyxx")
    assert admit(
        tp.INTAKE_STORIES, signed_delivery(keys, "county-xs", tp.INTAKE_STORIES, story), ring
    )
    for principal in ("review", "submission"):
        with pytest.raises(Refused, match="may not write") as refused:
            admit(
                tp.INTAKE_STORIES, signed_delivery(keys, principal, tp.INTAKE_STORIES, story), ring
            )
        assert refused.value.kind == "unauthorised"


def test_a_county_system_writes_only_intake_of_its_own_county(keys: Path) -> None:
    ring = Keyring.load(keys / "keyring.yaml")
    other = intake("dh", "dh-dyxx")
    with pytest.raises(Refused, match="only write events of county 'xs'") as refused:
        admit(tp.INTAKE_STORIES, signed_delivery(keys, "county-xs", tp.INTAKE_STORIES, other), ring)
    assert refused.value.county == "xs"  # the signer answers for it, not the claimed county
    reviewed = ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id="s-1", version=1, case_id="c", unit_path=ev.UnitPath(city="jc", unit="jc"),
            level=ev.ReviewLevel.CITY, decision=ev.Decision.APPROVED, final=True,
            reviewer="r", reviewer_unit="jc", decided_at=ev.utcnow(),
        ),
        producer="review", county="xs",
    )  # fmt: skip
    with pytest.raises(Refused, match=r"may not write story\.reviewed"):
        admit(
            tp.STORY_REVIEWED, signed_delivery(keys, "county-xs", tp.STORY_REVIEWED, reviewed), ring
        )


def test_a_record_too_large_to_copy_is_dead_lettered_as_its_coordinates_hash_and_head() -> None:
    raw = b"x" * 3_000_000
    copy = json.loads(bounded_copy(delivery("intake.stories", raw, {}), "invalid event"))
    assert copy["size"] == 3_000_000 and copy["offset"] == 7 and copy["partition"] == 0
    assert copy["sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(copy["head_base64"]) < 1400 and copy["reason"] == "invalid event"


def test_a_record_read_again_at_an_offset_already_delivered_counts_as_a_redelivery(
    keys: Path,
) -> None:
    settings = Settings(service_name=f"redeliver{uuid.uuid4().hex[:6]}", bus_keys_dir=str(keys))
    bus = make_bus(settings, make_client(settings)["unused"])
    subscription = _Subscription(bus, tp.INTAKE_STORIES, "g", "take_in")
    labels = {"service": settings.service_name, "topic": "intake.stories"}

    def count() -> float:
        return REGISTRY.get_sample_value("citydesk_event_redeliveries_total", labels) or 0.0

    for offset in (7, 8, 9):
        subscription.note_delivery(
            Delivery(
                topic="intake.stories", partition=1, offset=offset, key=None, raw=b"", headers={}
            )
        )
    assert count() == 0
    for offset in (8, 9):  # a nack seeks back: the same records again
        subscription.note_delivery(
            Delivery(
                topic="intake.stories", partition=1, offset=offset, key=None, raw=b"", headers={}
            )
        )
    assert count() == 2


@pytest.mark.parametrize("service", ["submission", "review", "scoring", "sentiment", "media"])
def test_each_service_reads_exactly_the_topics_its_broker_user_may_read(
    service: str, keys: Path
) -> None:
    settings = Settings(service_name=service, bus_keys_dir=str(keys))
    app = import_module(f"services.{service}.app").create_app(settings)
    read = {subscription.topic.name for subscription in app.state.runtime.bus.subscriptions}
    assert read == {topic.name for topic in tp.ALL if service in topic.readers}


def test_a_service_without_a_keyring_refuses_to_start() -> None:
    settings = Settings(service_name="lost", bus_keys_dir=None, bus_keyring_file=None)
    with pytest.raises(RuntimeError, match="no bus keyring"):
        make_bus(settings, make_client(settings)["unused"])
