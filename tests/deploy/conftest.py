"""Fixtures for the deployment checks: the tools (fetched once) and the chart rendered
with its default values and with each example values file."""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import KUBERNETES_VERSION, REPO, DeployTools, deploy_tools

CHART = REPO / "deploy" / "helm" / "citydesk"
EXAMPLES = sorted((REPO / "deploy" / "helm" / "examples").glob("*.yaml"))
VALUE_SETS = {"default": None, **{path.stem: path for path in EXAMPLES}}


@pytest.fixture(scope="session")
def tools() -> DeployTools:
    return deploy_tools()


def helm_template(tools: DeployTools, *args: str) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart as release ``citydesk`` in namespace ``citydesk``."""
    return subprocess.run(
        [
            str(tools.helm),
            "template",
            "citydesk",
            str(CHART),
            "--namespace",
            "citydesk",
            "--kube-version",
            KUBERNETES_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def rendered(tools: DeployTools) -> dict[str, str]:
    """The rendered manifests per value set (``default`` and each example file's stem)."""
    out: dict[str, str] = {}
    for name, path in VALUE_SETS.items():
        result = helm_template(tools, *(["--values", str(path)] if path else []))
        assert result.returncode == 0, f"helm template ({name}) failed:\n{result.stderr}"
        out[name] = result.stdout
    return out


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=32)
def _parsed(manifest: str) -> tuple[dict, ...]:
    return tuple(doc for doc in yaml.load_all(manifest, Loader=_Loader) if doc)


def documents(manifest: str) -> list[dict]:
    """The objects of a rendered manifest (parsed once; callers get fresh copies)."""
    return copy.deepcopy(list(_parsed(manifest)))


def chart_path(*parts: str) -> Path:
    return CHART.joinpath(*parts)


def rendered_rules(tools: DeployTools, *helm_args: str) -> dict:
    """The chart's PrometheusRule spec (thresholds from values put in), as Prometheus
    reads a rule file; ``helm_args`` e.g. ``--set metrics.prometheusRule.thresholds.x=1``."""
    result = helm_template(tools, "--show-only", "templates/prometheusrule.yaml", *helm_args)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    (rule,) = documents(result.stdout)
    return dict(rule["spec"])
