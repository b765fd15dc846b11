"""Each service's Kafka handlers wired as the service builds them, driven through
FastStream's in-memory ``TestKafkaBroker``: the right record reaches the right service
function as its parsed event, and every other record takes the dead-letter path with
its reason (unauthorised writer, invalid bytes, a business refusal, a handler that keeps
failing) while an outage is waited out.

The service functions behind the handlers need MongoDB, so they are replaced here by
recorders: what is tested is the wiring and the dead-letter decision, not the effect
(the tests over the real stack do that). Dead letters are recorded, not written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, cast

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.testing import build_message
from pymongo.errors import AutoReconnect

from shared import events as ev
from shared import topics as tp
from shared.bus_auth import county_principal, local_signer
from shared.deadletters import Delivery
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.unit.samples import event_of

TOPICS = {topic.name: topic for topic in tp.ALL}


def rightful_writer(topic: tp.Topic, event: ev.Envelope) -> str:
    writer = topic.writers[0]
    return county_principal(event.county or "dh") if writer == tp.COUNTY_SYSTEMS else writer


# ---- a service wired over the in-memory broker ---------------------------------------------------
@dataclass
class DeadLetterBook:
    """Stands in for :class:`shared.deadletters.DeadLetters`: records each dead letter."""

    written: list[dict[str, Any]] = field(default_factory=list)

    async def write(
        self, delivery: Delivery, *, group: str, reason: str, kind: str, county: str | None = None
    ) -> None:
        self.written.append(
            {"topic": delivery.topic, "group": group, "kind": kind, "reason": reason,
             "county": county, "raw": delivery.raw}
        )  # fmt: skip

    async def ensure_indexes(self) -> None:
        return None

    @property
    def kinds(self) -> list[str]:
        return [letter["kind"] for letter in self.written]


@dataclass
class Wired:
    runtime: ServiceRuntime
    keys: Path
    dead_letters: DeadLetterBook
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def record(
        self, topic: tp.Topic, event: ev.Envelope | bytes, *, signer: str | None = None
    ) -> tuple[bytes, bytes | None, dict[str, str]]:
        """Value, key and headers of a record, signed by ``signer`` (default: the topic's
        rightful writer)."""
        if isinstance(event, bytes):
            value, key = event, b"k"
            signer = signer or rightful_writer(topic, event_of(tp.INTAKE_STORIES))
        else:
            value, key = event.model_dump_json().encode(), topic.key(event)
            signer = signer or rightful_writer(topic, event)
        headers = {"content-type": "application/json"}
        headers |= local_signer(self.keys, signer).headers(topic.name, key, value)
        return value, key, headers

    async def send(
        self, topic: tp.Topic, event: ev.Envelope | bytes, *, signer: str | None = None
    ) -> None:
        value, key, headers = self.record(topic, event, signer=signer)
        async with TestKafkaBroker(self.runtime.bus.broker) as broker:
            await broker.publish(value, topic.name, key=key, headers=headers)

    async def send_batch(
        self,
        topic: tp.Topic,
        events: Sequence[ev.Envelope],
        signers: list[str | None] | None = None,
    ) -> None:
        """Several records in one batch, each with its own signature (FastStream's
        ``publish_batch`` gives every record the same headers)."""
        records = []
        for event, signer in zip(events, signers or [None] * len(events), strict=True):
            value, key, headers = self.record(topic, event, signer=signer)
            records.append(
                await build_message(value, topic.name, key=key, headers=headers, serializer=None)
            )
        async with TestKafkaBroker(self.runtime.bus.broker):
            subscriber = next(
                s
                for s in self.runtime.bus.broker.subscribers
                if topic.name in cast(Any, s).topic_names
            )
            await subscriber.process_message(records)


# what each handler calls: (service, topic) -> (module, function)
TARGETS: dict[tuple[str, str], tuple[str, str]] = {
    ("submission", "intake.stories"): (
        "services.submission.service.intake",
        "take_in_county_story",
    ),
    ("submission", "media.stored"): ("services.submission.service.projections", "record_media"),
    ("submission", "story.reviewed"): ("services.submission.service.projections", "record_review"),
    ("submission", "story.published"): (
        "services.submission.service.projections",
        "record_publication",
    ),
    ("review", "story.submitted"): ("services.review.cases", "open_case"),
    ("review", "opinion.flagged"): ("services.review.cases", "record_screening"),
    ("sentiment", "story.submitted"): ("services.sentiment.screening", "screen_story"),
    ("sentiment", "intake.opinions"): ("services.sentiment.intake", "record_opinions"),
    **{
        ("scoring", topic): ("services.scoring.handlers", "apply_events")
        for topic in ("story.submitted", "story.reviewed", "story.published",
                      "opinion.flagged", "media.stored")
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def runtimes(bus_keys: Path) -> Callable[[str, int], ServiceRuntime]:
    """Each service's runtime built once per (service, retries), as it runs with its
    consumers on: the handlers look their functions up at each call, so the recorders a
    test puts in place are the ones they reach."""
    built: dict[tuple[str, int], ServiceRuntime] = {}

    def runtime_of(service: str, retries: int) -> ServiceRuntime:
        if (service, retries) not in built:
            settings = Settings(
                service_name=service, bus_keys_dir=str(bus_keys), run_consumers=True,
                kafka_handler_retries=retries, kafka_retry_backoff_seconds=0,
            )  # fmt: skip
            app = import_module(f"services.{service}.app").create_app(settings)
            built[(service, retries)] = app.state.runtime
        return built[(service, retries)]

    return runtime_of


@pytest.fixture
def wire(
    bus_keys: Path,
    runtimes: Callable[[str, int], ServiceRuntime],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Wired]:
    """``wire(service, failures={function: [exception, ...]})``: the service's handlers,
    each target function replaced by a recorder that raises the listed exceptions first,
    one per call, and dead letters recorded for this test alone."""

    def build(
        service: str, failures: dict[str, list[BaseException]] | None = None, retries: int = 2
    ) -> Wired:
        runtime = runtimes(service, retries)
        wired = Wired(runtime=runtime, keys=bus_keys, dead_letters=DeadLetterBook())
        # a recorder in place of the MongoDB-backed store: the decision is under test
        monkeypatch.setattr(runtime.bus, "dead_letters", wired.dead_letters)
        pending = {name: list(errors) for name, errors in (failures or {}).items()}
        for (owner, _), (module, name) in TARGETS.items():
            if owner != service:
                continue

            async def recorder(*args: Any, _name: str = name, **kwargs: Any) -> None:
                wired.calls.append((_name, kwargs.get("event") or kwargs.get("events")))
                if pending.get(_name):
                    raise pending[_name].pop(0)

            monkeypatch.setattr(import_module(module), name, recorder)
        return wired

    return build


# ---- the right record reaches the right function --------------------------------------------
@pytest.mark.parametrize(("service", "topic"), sorted(TARGETS))
async def test_each_topic_reaches_its_handler_as_the_parsed_event(
    wire: Callable[..., Wired], service: str, topic: str
) -> None:
    wired = wire(service)
    event = event_of(TOPICS[topic])
    await wired.send(TOPICS[topic], event)
    [(name, received)] = wired.calls
    assert name == TARGETS[(service, topic)][1]
    events = received if isinstance(received, list) else [received]
    assert [e.event_id for e in events] == [event.event_id]
    assert type(events[0]) is TOPICS[topic].model
    assert wired.dead_letters.written == []


@pytest.mark.parametrize("service", ["submission", "review", "scoring", "sentiment"])
def test_each_service_reads_only_the_topics_it_has_a_handler_for(service: str) -> None:
    handled = {topic for owner, topic in TARGETS if owner == service}
    assert handled == {topic.name for topic in tp.ALL if service in topic.readers}


# ---- and every other record is dead-lettered with its reason -----------------------------------
@pytest.mark.parametrize(
    ("service", "topic", "signer"),
    [
        ("submission", tp.STORY_REVIEWED, "submission"),  # forged: only review decides
        ("submission", tp.INTAKE_STORIES, "review"),  # a service is no county system
        ("review", tp.STORY_SUBMITTED, "county-dh"),
        ("scoring", tp.STORY_PUBLISHED, "media"),
        ("sentiment", tp.INTAKE_OPINIONS, "sentiment"),
    ],
)
async def test_a_record_from_a_writer_who_may_not_write_it_is_dead_lettered_unread(
    wire: Callable[..., Wired], service: str, topic: tp.Topic, signer: str
) -> None:
    wired = wire(service)
    await wired.send(topic, event_of(topic), signer=signer)
    assert wired.calls == []
    assert wired.dead_letters.kinds == ["unauthorised"]
    assert f"{signer!r} may not write {topic.name}" in wired.dead_letters.written[0]["reason"]


@pytest.mark.parametrize(
    ("service", "topic"), [("submission", tp.INTAKE_STORIES), ("sentiment", tp.INTAKE_OPINIONS)]
)
async def test_a_county_writes_only_its_own_countys_intake(
    wire: Callable[..., Wired], service: str, topic: tp.Topic
) -> None:
    wired = wire(service)
    other_county = event_of(topic).model_copy(update={"county": "xs"})
    await wired.send(topic, other_county, signer="county-dh")
    assert wired.calls == []
    [letter] = wired.dead_letters.written
    # the county the signer speaks for answers for it, not the county the event claims
    assert (letter["kind"], letter["county"]) == ("unauthorised", "dh")


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"", b"null", b'{"type": "story.reviewed"}', "不是 JSON".encode()],
)
async def test_bytes_that_are_not_the_topics_event_are_dead_lettered_as_invalid(
    wire: Callable[..., Wired], value: bytes
) -> None:
    wired = wire("submission")
    await wired.send(tp.STORY_REVIEWED, value, signer="review")
    assert wired.calls == []
    assert wired.dead_letters.kinds == ["invalid"]
    assert wired.dead_letters.written[0]["raw"] == value  # kept whole for a replay


async def test_an_unsigned_record_is_dead_lettered_unread(wire: Callable[..., Wired]) -> None:
    wired = wire("scoring")
    event = event_of(tp.STORY_REVIEWED)
    value = event.model_dump_json().encode()
    async with TestKafkaBroker(wired.runtime.bus.broker) as broker:
        await broker.publish(value, tp.STORY_REVIEWED.name, key=b"s-1")
    assert wired.calls == []
    assert wired.dead_letters.kinds == ["unauthorised"]
    assert "unsigned" in wired.dead_letters.written[0]["reason"]


@pytest.mark.parametrize(
    ("service", "topic", "function", "error"),
    [
        ("submission", tp.INTAKE_STORIES, "take_in_county_story", "InvalidStory"),
        ("submission", tp.INTAKE_STORIES, "take_in_county_story", "StoryConflict"),
        ("submission", tp.STORY_REVIEWED, "record_review", "StoryNotFound"),
        ("submission", tp.STORY_PUBLISHED, "record_publication", "StoryNotFound"),
    ],
)
async def test_a_business_refusal_is_dead_lettered_at_once_as_rejected(
    wire: Callable[..., Wired], service: str, topic: tp.Topic, function: str, error: str
) -> None:
    refusal = getattr(import_module(f"services.{service}.service.stories"), error)
    # each refusal names the story's problem in its detail, which the dead letter keeps
    exception = refusal("不能受理") if error == "StoryNotFound" else refusal("不能受理", "不能受理")
    wired = wire(service, failures={function: [exception]})
    await wired.send(topic, event_of(topic))
    assert len(wired.calls) == 1  # no retry: it could never be applied
    [letter] = wired.dead_letters.written
    assert (letter["kind"], letter["county"]) == ("rejected", "dh")
    assert "不能受理" in letter["reason"]


async def test_a_permanent_error_of_a_handler_is_dead_lettered_at_once(
    wire: Callable[..., Wired],
) -> None:
    from shared.kafka import PermanentError

    wired = wire("review", failures={"open_case": [PermanentError("unknown unit 'x'")]})
    await wired.send(tp.STORY_SUBMITTED, event_of(tp.STORY_SUBMITTED))
    assert len(wired.calls) == 1
    assert wired.dead_letters.kinds == ["rejected"]


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_its_retries(
    wire: Callable[..., Wired],
) -> None:
    failures = [RuntimeError(f"bug {n}") for n in range(5)]
    wired = wire("sentiment", failures={"screen_story": failures})
    await wired.send(tp.STORY_SUBMITTED, event_of(tp.STORY_SUBMITTED))
    assert len(wired.calls) == 3  # the first try and kafka_handler_retries=2
    [letter] = wired.dead_letters.written
    assert letter["kind"] == "handler_error"
    assert "failed 3 times" in letter["reason"] and "bug 2" in letter["reason"]


@pytest.mark.parametrize(
    ("service", "topic", "function", "failure", "retries"),
    [
        # a passing fault: retried within kafka_handler_retries
        ("submission", tp.MEDIA_STORED, "record_media", RuntimeError("once"), 2),
        # an outage of MongoDB with no retries left for a fault: waited out all the same,
        # since it is not the event's fault (the wait doubles from a second, up to ten)
        ("review", tp.OPINION_FLAGGED, "record_screening", AutoReconnect("stepped down"), 0),
    ],
)
async def test_a_failure_that_passes_is_applied_without_a_dead_letter(
    wire: Callable[..., Wired],
    service: str,
    topic: tp.Topic,
    function: str,
    failure: Exception,
    retries: int,
) -> None:
    wired = wire(service, failures={function: [failure]}, retries=retries)
    await wired.send(topic, event_of(topic))
    assert len(wired.calls) == 2 and wired.dead_letters.written == []


# ---- batches ------------------------------------------------------------------------------------
async def test_a_batch_is_handed_over_whole_and_its_refused_records_left_out(
    wire: Callable[..., Wired],
) -> None:
    wired = wire("scoring")
    events = [event_of(tp.STORY_SUBMITTED) for _ in range(3)]
    await wired.send_batch(tp.STORY_SUBMITTED, events, signers=[None, "review", None])
    [(_, handed)] = wired.calls
    assert [e.event_id for e in handed] == [events[0].event_id, events[2].event_id]
    assert wired.dead_letters.kinds == ["unauthorised"]


async def test_a_failing_batch_is_applied_one_at_a_time_so_only_the_culprit_is_dead_lettered(
    wire: Callable[..., Wired], monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = wire("scoring")
    events = [event_of(tp.STORY_SUBMITTED) for _ in range(3)]
    culprit = events[1].event_id
    seen: list[list[uuid.UUID]] = []

    async def apply_events(**kwargs: Any) -> None:
        ids = [e.event_id for e in kwargs["events"]]
        seen.append(ids)
        if culprit in ids:
            raise RuntimeError("the culprit" if len(ids) == 1 else "a batch with the culprit")

    monkeypatch.setattr(import_module("services.scoring.handlers"), "apply_events", apply_events)
    await wired.send_batch(tp.STORY_SUBMITTED, events)
    whole = [e.event_id for e in events]
    # the whole batch three times, then each event alone, the culprit three times
    assert seen == [whole] * 3 + [[whole[0]]] + [[culprit]] * 3 + [[whole[2]]]
    [letter] = wired.dead_letters.written
    assert letter["kind"] == "handler_error" and "the culprit" in letter["reason"]
