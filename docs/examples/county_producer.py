"""A county system sends one story to the city's bus, as the integrators' guide describes.

Stand-alone: it uses only aiokafka and cryptography (pip install aiokafka cryptography),
nothing of CityDesk's code. Usage:

    python county_producer.py --bootstrap HOST:PORT --county xs --key-file county-xs.key \
        --unit xs-dyxx --external-id portal-2026-0001

With --username/--password (and --ca-file) it signs in with SASL_SSL / SCRAM-SHA-512, as
on the bureau's cluster. It prints the record's partition and offset, then the address to
ask what became of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import ssl
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TOPIC = "intake.stories"


def sign(private_key: Ed25519PrivateKey, topic: str, key: bytes, value: bytes) -> str:
    """The citydesk-signature header: Ed25519 over topic, the key's sha256 and the value."""
    key_hash = hashlib.sha256(key).hexdigest().encode()
    message = b"citydesk-bus-v1\n" + topic.encode() + b"\n" + key_hash + b"\n" + value
    return base64.b64encode(private_key.sign(message)).decode()


def story_event(county: str, unit: str, external_id: str) -> dict[str, object]:
    """One intake.story envelope (docs/contracts/intake.story.v1.json)."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "intake.story",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": f"{county}-portal",
        "county": county,
        "unit": unit,
        "correlation_id": uuid.uuid4().hex,
        "payload": {
            "external_id": external_id,
            "unit": unit,
            "title": "我校开展秋季校园安全应急疏散演练",
            "body": (
                "为提高师生应对突发事件的能力，学校于本周组织全体师生开展校园安全应急疏散演练。"
                "演练前，各班主任向学生讲解了疏散路线和注意事项；警报响起后，师生按预定路线"
                "有序撤离到操场，全程用时三分二十秒。演练结束后，校长对演练情况进行了点评。"
            ),
            "category": "校园安全",
            "event_date": date.today().isoformat(),
            "author": "县教育融媒体中心",
        },
    }


async def send(args: argparse.Namespace, private_key: Ed25519PrivateKey) -> None:
    security: dict[str, object] = {}
    if args.username:
        security = {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": args.username,
            "sasl_plain_password": args.password,
            "ssl_context": ssl.create_default_context(cafile=args.ca_file),
        }
    # aiokafka hashes keys with murmur2, like the Java client and kafkajs: the county's
    # records land on the same partition as every other producer's for that county
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", **security)
    await producer.start()
    try:
        event = story_event(args.county, args.unit, args.external_id)
        key = args.county.encode()
        value = json.dumps(event, ensure_ascii=False).encode()
        headers = [
            ("content-type", b"application/json"),
            ("event-type", b"intake.story"),
            ("event-version", b"1"),
            ("correlation-id", str(event["correlation_id"]).encode()),
            ("citydesk-signer", f"county-{args.county}".encode()),
            ("citydesk-signature", sign(private_key, TOPIC, key, value).encode()),
        ]
        meta = await producer.send_and_wait(TOPIC, value, key=key, headers=headers)
        print(json.dumps({"partition": meta.partition, "offset": meta.offset}))
        print(f"GET /intake/{args.county}/stories/{args.external_id}  (submission service)")
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--county", required=True)
    parser.add_argument("--key-file", required=True, help="the county's private key (base64)")
    parser.add_argument("--unit", required=True, help="a school of the county")
    parser.add_argument("--external-id", required=True, help="the portal's own id")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--ca-file")
    args = parser.parse_args()
    seed = base64.b64decode(Path(args.key_file).read_text().strip())
    asyncio.run(send(args, Ed25519PrivateKey.from_private_bytes(seed)))


if __name__ == "__main__":
    main()
