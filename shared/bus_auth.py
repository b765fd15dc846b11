"""Who wrote a record on the bus, proven by the consumer rather than claimed by the message.

Every producer (each service, each county system) holds an Ed25519 key of its own and
signs what it writes: the topic, the key and the value. Every consumer checks the
signature against the bureau's keyring (public keys only) and the topic's writers
(:attr:`shared.topics.Topic.writers`), and a county system may only write events of its
own county. A record that fails is dead-lettered with the reason; nothing it says is
applied. On a production cluster the broker's ACLs (Strimzi ``KafkaUser``) already keep a
principal off topics it may not write; the signature is what proves the county inside a
shared intake topic, and it is the whole check on a broker without ACLs (the local one).

Header names and the signed bytes are part of the integrators' contract
(``docs/integrators.md``): ``citydesk-signer`` names the principal and
``citydesk-signature`` carries the base64 Ed25519 signature of
``b"citydesk-bus-v1\\n" + topic + b"\\n" + hex(sha256(key)) + b"\\n" + value``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.settings import Settings

SIGNER_HEADER = "citydesk-signer"
SIGNATURE_HEADER = "citydesk-signature"
COUNTY_PREFIX = "county-"
KEYRING_FILE = "keyring.yaml"


class UnauthorisedWriter(Exception):
    """The record's writer is unknown, its signature does not hold, or it may not write
    what it wrote."""


def county_principal(county: str) -> str:
    """The bus principal of a county's own system (also its SCRAM user name)."""
    return f"{COUNTY_PREFIX}{county}"


def county_of(principal: str) -> str | None:
    """The county a county system's principal speaks for; None for a service."""
    return principal[len(COUNTY_PREFIX) :] if principal.startswith(COUNTY_PREFIX) else None


def signed_bytes(topic: str, key: bytes | None, value: bytes) -> bytes:
    key_hash = hashlib.sha256(key or b"").hexdigest()
    return b"citydesk-bus-v1\n" + topic.encode() + b"\n" + key_hash.encode() + b"\n" + value


@dataclass(frozen=True)
class BusSigner:
    """This process's principal and private key."""

    principal: str
    private_key: Ed25519PrivateKey

    def headers(self, topic: str, key: bytes | None, value: bytes) -> dict[str, str]:
        signature = self.private_key.sign(signed_bytes(topic, key, value))
        return {
            SIGNER_HEADER: self.principal,
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        }


@dataclass(frozen=True)
class Keyring:
    """The public key of every principal allowed on the bus."""

    keys: dict[str, Ed25519PublicKey]

    def verify(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]) -> str:
        """The principal that signed this record; raises :class:`UnauthorisedWriter`."""
        principal = headers.get(SIGNER_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not principal or not signature:
            raise UnauthorisedWriter(
                f"unsigned record: the {SIGNER_HEADER} and {SIGNATURE_HEADER} headers are required"
            )
        public_key = self.keys.get(principal)
        if public_key is None:
            raise UnauthorisedWriter(f"unknown signer {principal[:64]!r}")
        try:
            public_key.verify(
                base64.b64decode(signature, validate=True), signed_bytes(topic, key, value)
            )
        except (InvalidSignature, ValueError) as exc:
            raise UnauthorisedWriter(
                f"the signature of {principal!r} does not match this topic, key and value"
            ) from exc
        return principal

    @classmethod
    def load(cls, path: str | Path) -> Keyring:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        principals = data.get("principals") or {}
        return cls(
            {
                name: Ed25519PublicKey.from_public_bytes(base64.b64decode(entry["public_key"]))
                for name, entry in principals.items()
            }
        )


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    """A private key from its base64 32-byte seed (what ``citydesk bus keygen`` writes)."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text.strip()))


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def new_private_key_text() -> tuple[str, str]:
    """A fresh key pair as (private seed, public key), both base64."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(seed).decode(), public_key_text(key)


def write_local_keys(folder: Path, principals: list[str]) -> None:
    """Give every principal a key pair in ``folder`` (``<principal>.key``, mode 600) and
    write the keyring; keys already there are kept, so a restarted stack keeps its keys."""
    folder.mkdir(parents=True, exist_ok=True)
    ring: dict[str, dict[str, str]] = {}
    for principal in principals:
        key_file = folder / f"{principal}.key"
        if key_file.exists():
            public = public_key_text(private_key_from_text(key_file.read_text()))
        else:
            seed, public = new_private_key_text()
            key_file.write_text(seed + "\n")
            key_file.chmod(0o600)
        ring[principal] = {"public_key": public}
    (folder / KEYRING_FILE).write_text(
        yaml.safe_dump({"principals": ring}, sort_keys=True), encoding="utf-8"
    )


def local_signer(folder: str | Path, principal: str) -> BusSigner:
    """The signer of ``principal`` from a local key folder (the local stack's, or tests')."""
    text = (Path(folder) / f"{principal}.key").read_text()
    return BusSigner(principal, private_key_from_text(text))


@functools.cache
def _keyring_at(path: str) -> Keyring:
    return Keyring.load(path)


def bus_principal(settings: Settings) -> str:
    return settings.bus_principal or settings.service_name


def signer_for(settings: Settings) -> BusSigner | None:
    """This process's signer: the key in settings, else the local key folder's."""
    principal = bus_principal(settings)
    if settings.bus_signing_key is not None:
        key = private_key_from_text(settings.bus_signing_key.get_secret_value())
        return BusSigner(principal, key)
    if settings.bus_keys_dir and (Path(settings.bus_keys_dir) / f"{principal}.key").exists():
        return local_signer(settings.bus_keys_dir, principal)
    return None


def keyring_for(settings: Settings) -> Keyring | None:
    """The keyring consumers check against, from settings (None: nothing configured)."""
    path = settings.bus_keyring_file or (
        str(Path(settings.bus_keys_dir) / KEYRING_FILE) if settings.bus_keys_dir else None
    )
    return _keyring_at(path) if path else None
