"""The Helm chart: lint, render with each values file, schema-valid Kubernetes objects,
and the promises the chart makes (secrets by reference, probes, network reach, scraping)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings
from tests.deploy.conftest import (
    CHART,
    VALUE_SETS,
    chart_path,
    documents,
    helm_template,
)
from tests.deploy.tools import KUBERNETES_VERSION, REPO, DeployTools

SERVICES = ("submission", "media", "review", "scoring", "sentiment")
PORTS = {"submission": 8101, "media": 8102, "review": 8103, "scoring": 8104, "sentiment": 8105}
CONSOLE_PORT = 8100
# every process the chart runs: the five services and the web console
PROCESS_PORTS = {**PORTS, "console": CONSOLE_PORT}


def _kinds(manifest: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents(manifest) if doc["kind"] == kind]


def _containers(manifest: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (deployment, container)
        for deployment in _kinds(manifest, "Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
    ]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice (Kubernetes would
    silently keep one of them)."""


def _no_duplicate_keys(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {sorted(duplicates)}", node.start_mark
        )
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_passes_helm_lint_strict(tools: DeployTools, values: str) -> None:
    path = VALUE_SETS[values]
    result = subprocess.run(
        [
            str(tools.helm),
            "lint",
            "--strict",
            str(CHART),
            "--kube-version",
            KUBERNETES_VERSION,
            *(["--values", str(path)] if path else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_manifests_are_valid_kubernetes_objects(
    tools: DeployTools, rendered: dict[str, str], values: str, tmp_path: Path
) -> None:
    manifest = rendered[values]
    list(yaml.load_all(manifest, Loader=_UniqueKeyLoader))
    target = tmp_path / f"{values}.yaml"
    target.write_text(manifest)
    result = subprocess.run(
        [
            str(tools.kubernetes_validate),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--quiet",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # only the Prometheus and Strimzi operators' kinds have no schema here; they are
    # checked below
    unknown = [line for line in output.splitlines() if "Couldn't find schema" in line]
    operator_kinds = ("monitoring.coreos.com/v1", "kafka.strimzi.io/v1beta2")
    assert all(any(kind in line for kind in operator_kinds) for line in unknown), output


def test_default_values_render_every_object_the_operators_need(rendered: dict[str, str]) -> None:
    manifest = rendered["default"]
    kinds = [doc["kind"] for doc in documents(manifest)]
    for kind in (
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ):
        assert kind in kinds, kind
    services = {
        doc["metadata"]["labels"]["citydesk.io/service"] for doc in _kinds(manifest, "Service")
    }
    assert services == set(PROCESS_PORTS)
    assert {doc["metadata"]["name"] for doc in _kinds(manifest, "ServiceMonitor")} == {
        f"citydesk-{name}" for name in PROCESS_PORTS
    }
    # the console's Ingress is off until a host is chosen
    assert not _kinds(manifest, "Ingress")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("kafka.securityProtocol=SASL_SCRAM", "kafka.securityProtocol must be one of"),
        ("kafka.saslMechanism=SCRAM-SHA-1", "kafka.saslMechanism must be one of"),
        ("kafka.sasl.existingSecret=", "kafka.sasl.existingSecret"),
        ("kafka.bootstrap=kafka", "kafka.bootstrap: Does not match pattern"),
        ("mongodb.existingSecret=", "mongodb.existingSecret"),
        ("s3.endpoint=https://minio:9000", "s3.endpoint: Does not match pattern"),
        ("auth.jwksUrl=", "auth.jwksUrl"),
        ("services.review.port=eighty", "services.review.port: Invalid type"),
        ("services.media.api.replicas=-1", "services.media.api.replicas"),
        ("console.port=eighty", "console.port: Invalid type"),
        ("console.web.replicas=-1", "console.web.replicas"),
        ("console.ingress.host=https://desk", "console.ingress.host: Does not match pattern"),
    ],
)
def test_a_wrong_value_fails_at_install_with_a_clear_message(
    tools: DeployTools, setting: str, message: str
) -> None:
    result = helm_template(tools, "--set", setting)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_chart_copy_of_the_org_tree_equals_the_example_city() -> None:
    copy = chart_path("files", "city.yaml").read_text()
    assert copy == (REPO / "shared" / "data" / "city.yaml").read_text(), (
        "deploy/helm/citydesk/files/city.yaml differs from shared/data/city.yaml: "
        "cp shared/data/city.yaml deploy/helm/citydesk/files/city.yaml"
    )


def test_chart_copy_of_the_scoring_rules_equals_the_services_seed() -> None:
    copy = chart_path("files", "scoring-config.yaml").read_text()
    assert copy == (REPO / "services" / "scoring" / "rules.yaml").read_text(), (
        "deploy/helm/citydesk/files/scoring-config.yaml differs from "
        "services/scoring/rules.yaml: cp services/scoring/rules.yaml "
        "deploy/helm/citydesk/files/scoring-config.yaml"
    )


def test_org_tree_and_scoring_rules_reach_the_pods_as_config_maps(
    rendered: dict[str, str],
) -> None:
    manifest = rendered["production"]
    maps = {doc["metadata"]["name"]: doc for doc in _kinds(manifest, "ConfigMap")}
    assert yaml.safe_load(maps["citydesk-org"]["data"]["city.yaml"]) == yaml.safe_load(
        (REPO / "shared" / "data" / "city.yaml").read_text()
    )
    assert yaml.safe_load(maps["citydesk-scoring-config"]["data"]["config.yaml"]) == (
        yaml.safe_load((REPO / "services" / "scoring" / "rules.yaml").read_text())
    )
    for deployment, container in _containers(manifest):
        assert _env(container)["CITYDESK_ORG_FILE"] == "/etc/citydesk/org/city.yaml"
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts["org"] == "/etc/citydesk/org"
        if container["name"] == "scoring":
            assert mounts["config"] == "/etc/citydesk/scoring"
            volumes = deployment["spec"]["template"]["spec"]["volumes"]
            assert {"name": "config", "configMap": {"name": "citydesk-scoring-config"}} in volumes


def test_a_services_seed_config_from_values_reaches_the_setting_that_reads_it(
    tools: DeployTools,
) -> None:
    result = helm_template(tools, "--set", "services.review.config.content=routes: []")
    assert result.returncode == 0, result.stderr
    maps = {doc["metadata"]["name"]: doc for doc in _kinds(result.stdout, "ConfigMap")}
    assert maps["citydesk-review-config"]["data"] == {"config.yaml": "routes: []"}
    for _, container in _containers(result.stdout):
        if container["name"] == "review":
            assert _env(container)["CITYDESK_REVIEW_CONFIG_FILE"] == (
                "/etc/citydesk/review/config.yaml"
            )


@pytest.mark.parametrize("values", VALUE_SETS)
def test_secrets_are_referenced_by_name_never_embedded(
    rendered: dict[str, str], values: str
) -> None:
    manifest = rendered[values]
    assert not _kinds(manifest, "Secret")
    for _, container in _containers(manifest):
        env = _env(container)
        for name in (
            "CITYDESK_MONGO_URI",
            "CITYDESK_KAFKA_SASL_PASSWORD",
            "CITYDESK_S3_ACCESS_KEY",
            "CITYDESK_S3_SECRET_KEY",
        ):
            if name in env:
                assert set(env[name]) == {"secretKeyRef"}, (container["name"], name)


def test_push_settings_and_their_secret_reach_the_sentiment_pods_alone(
    rendered: dict[str, str],
) -> None:
    for deployment, container in _containers(rendered["production"]):
        refs = [source["secretRef"]["name"] for source in container.get("envFrom", [])]
        if deployment["spec"]["selector"]["matchLabels"]["citydesk.io/service"] == "sentiment":
            assert "citydesk-sentiment-push" in refs
            env = _env(container)
            assert env["CITYDESK_SENTIMENT_SMTP_HOST"] == "smtp.jc-edu.example.org"
            assert "CITYDESK_SENTIMENT_SMTP_PASSWORD" not in env  # from the Secret only
        else:
            assert "citydesk-sentiment-push" not in refs, container["name"]


def test_production_reaches_kafka_with_scram_over_tls(rendered: dict[str, str]) -> None:
    for _, container in _containers(rendered["production"]):
        if container["name"] == "console":
            continue
        env = _env(container)
        assert env["CITYDESK_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["CITYDESK_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["CITYDESK_KAFKA_CA_FILE"] == "/etc/citydesk/kafka-ca/ca.crt"
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts["kafka-ca"] == "/etc/citydesk/kafka-ca"
        assert env["CITYDESK_ENVIRONMENT"] == "production"
        assert "CITYDESK_JWT_JWKS_URL" in env


def test_api_replicas_leave_the_consumers_to_worker_replicas(rendered: dict[str, str]) -> None:
    run_consumers = {
        deployment["metadata"]["name"]: _env(container)["CITYDESK_RUN_CONSUMERS"]
        for deployment, container in _containers(rendered["default"])
        if container["name"] != "console"
    }
    assert run_consumers["citydesk-review-api"] == "false"
    assert run_consumers["citydesk-review-worker"] == "true"
    # media has no worker Deployment by default: its API replicas consume
    assert run_consumers["citydesk-media-api"] == "true"
    single = {
        deployment["metadata"]["name"]: _env(container)["CITYDESK_RUN_CONSUMERS"]
        for deployment, container in _containers(rendered["single-node"])
        if container["name"] != "console"
    }
    assert single == {f"citydesk-{name}-api": "true" for name in SERVICES}


def _console(manifest: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (found,) = [pair for pair in _containers(manifest) if pair[1]["name"] == "console"]
    return found


@pytest.mark.parametrize("values", VALUE_SETS)
def test_console_runs_without_a_worker_broker_database_or_store(
    rendered: dict[str, str], values: str
) -> None:
    deployment, container = _console(rendered[values])
    assert deployment["metadata"]["name"] == "citydesk-console-web"
    assert [
        doc
        for doc in _kinds(rendered[values], "Deployment")
        if "console" in doc["metadata"]["name"]
    ] == [deployment]
    env = _env(container)
    backing = [
        name
        for name in env
        if name.startswith(("CITYDESK_KAFKA_", "CITYDESK_MONGO_", "CITYDESK_S3_"))
        or name == "CITYDESK_RUN_CONSUMERS"
    ]
    assert not backing, backing
    assert env["CITYDESK_ORG_FILE"] == "/etc/citydesk/org/city.yaml"
    assert env["CITYDESK_JWT_JWKS_URL"].startswith("https://")
    mounts = {mount["name"] for mount in container["volumeMounts"]}
    assert mounts == {"org", "tmp"}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_console_calls_each_service_at_its_in_cluster_service(
    rendered: dict[str, str], values: str
) -> None:
    manifest = rendered[values]
    env = _env(_console(manifest)[1])
    services = {doc["metadata"]["name"]: doc for doc in _kinds(manifest, "Service")}
    for name, port in PORTS.items():
        url = env[f"CITYDESK_CONSOLE_{name.upper()}_URL"]
        assert url == f"http://citydesk-{name}.citydesk.svc:{port}"
        service = services[f"citydesk-{name}"]
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
        assert [item["port"] for item in service["spec"]["ports"]] == [port]
    assert env["CITYDESK_CONSOLE_COOKIE_SECURE"] == "true"


def test_console_settings_from_values_replace_the_defaults(tools: DeployTools) -> None:
    result = helm_template(
        tools,
        "--set",
        "console.cookieSecure=false",
        "--set",
        "console.env.CITYDESK_CONSOLE_MEDIA_URL=http://media.example:8102",
    )
    assert result.returncode == 0, result.stderr
    container = _console(result.stdout)[1]
    names = [item["name"] for item in container["env"]]
    assert len(names) == len(set(names)), names
    env = _env(container)
    assert env["CITYDESK_CONSOLE_MEDIA_URL"] == "http://media.example:8102"
    assert env["CITYDESK_CONSOLE_COOKIE_SECURE"] == "false"


def test_console_can_be_left_out(tools: DeployTools) -> None:
    result = helm_template(tools, "--set", "console.enabled=false")
    assert result.returncode == 0, result.stderr
    named = [doc for doc in documents(result.stdout) if "console" in doc["metadata"]["name"]]
    assert not named, [(doc["kind"], doc["metadata"]["name"]) for doc in named]


def test_production_console_ingress_serves_its_host_over_tls(rendered: dict[str, str]) -> None:
    (ingress,) = _kinds(rendered["production"], "Ingress")
    spec = ingress["spec"]
    (rule,) = spec["rules"]
    assert spec["tls"] == [{"hosts": [rule["host"]], "secretName": "citydesk-console-tls"}]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "citydesk-console", "port": {"name": "http"}}
    # uploads of up to media's largest file stream through the console
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_pod_has_probes_limits_and_runs_as_non_root(
    rendered: dict[str, str], values: str
) -> None:
    for deployment, container in _containers(rendered[values]):
        name = container["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert container["command"] == [
            "citydesk",
            "serve",
            name,
            "--host",
            "0.0.0.0",
            "--port",
            str(PROCESS_PORTS[name]),
        ]
        assert container["ports"] == [
            {"name": "http", "containerPort": PROCESS_PORTS[name], "protocol": "TCP"}
        ]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert set(container["resources"]) == {"requests", "limits"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["serviceAccountName"] == "citydesk"


def test_media_alone_gets_the_s3_settings(rendered: dict[str, str]) -> None:
    for _, container in _containers(rendered["production"]):
        env = _env(container)
        assert ("CITYDESK_S3_ENDPOINT" in env) == (container["name"] == "media")


def _egress_ports(policy: dict[str, Any]) -> set[int]:
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


def test_network_policy_lets_services_reach_only_their_dependencies(
    rendered: dict[str, str],
) -> None:
    policies = {
        doc["metadata"]["labels"]["citydesk.io/service"]: doc
        for doc in _kinds(rendered["production"], "NetworkPolicy")
    }
    assert set(policies) == set(PROCESS_PORTS)
    http_ports = set(PORTS.values())
    for name, policy in policies.items():
        # DNS, Kafka's TLS listener, MongoDB, the JWKS endpoint, each other's HTTP ports
        expected = {53, 9093, 27017, 443} | http_ports
        if name == "media":
            expected.add(9000)
        if name == "console":
            # DNS, the JWKS endpoint and the five services' HTTP ports: nothing else
            expected = {53, 443} | http_ports
        assert _egress_ports(policy) == expected, name
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["podSelector"]["matchLabels"]["citydesk.io/service"] == name
        for rule in policy["spec"]["egress"]:
            assert rule.get("to"), f"{name}: an egress rule open to any address: {rule}"
        assert [rule["ports"] for rule in policy["spec"]["ingress"]] == [
            [{"port": "http", "protocol": "TCP"}]
        ]


def test_console_network_policy_admits_the_ingress_controller_and_reaches_only_apis(
    rendered: dict[str, str],
) -> None:
    production = yaml.safe_load(VALUE_SETS["production"].read_text())
    policies = {
        doc["metadata"]["name"]: doc for doc in _kinds(rendered["production"], "NetworkPolicy")
    }
    policy = policies["citydesk-console"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["from"] == production["console"]["ingressFrom"]
    assert any(
        peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
        for peer in ingress["from"]
    )
    (to_services,) = [
        rule
        for rule in policy["spec"]["egress"]
        if {port["port"] for port in rule["ports"]} == set(PORTS.values())
    ]
    (peer,) = to_services["to"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    # the services admit the console's pods: they admit every pod of the release
    console_labels = _console(rendered["production"])[0]["spec"]["template"]["metadata"]["labels"]
    for name in SERVICES:
        peers = policies[f"citydesk-{name}"]["spec"]["ingress"][0]["from"]
        in_release = [
            peer["podSelector"]["matchLabels"] for peer in peers if set(peer) == {"podSelector"}
        ]
        assert any(_selects(selector, console_labels) for selector in in_release), name
    # without its own list the console admits what networkPolicy.ingressFrom names
    single = {
        doc["metadata"]["name"]: doc for doc in _kinds(rendered["single-node"], "NetworkPolicy")
    }
    single_values = yaml.safe_load(VALUE_SETS["single-node"].read_text())
    assert (
        single["citydesk-console"]["spec"]["ingress"][0]["from"]
        == (single_values["networkPolicy"]["ingressFrom"])
    )


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("values", ["default", "production"])
def test_every_service_monitor_scrapes_the_http_port_of_api_and_worker_pods(
    rendered: dict[str, str], values: str
) -> None:
    manifest = rendered[values]
    services = _kinds(manifest, "Service")
    deployments = _kinds(manifest, "Deployment")
    for monitor in _kinds(manifest, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [svc for svc in services if _selects(selector, svc["metadata"]["labels"])]
        assert chosen, monitor["metadata"]["name"]
        endpoint = monitor["spec"]["endpoints"][0]
        assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
        # `service` is the CityDesk name on every series, `up` and process_* included
        assert {
            "sourceLabels": ["__meta_kubernetes_pod_label_citydesk_io_service"],
            "targetLabel": "service",
        } in endpoint["relabelings"]
        for svc in chosen:
            assert endpoint["port"] in {port["name"] for port in svc["spec"]["ports"]}
        # every pod of the service sits behind one of the chosen Services
        name = selector["citydesk.io/service"]
        for deployment in deployments:
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if labels["citydesk.io/service"] == name:
                assert any(_selects(svc["spec"]["selector"], labels) for svc in chosen)


def test_prometheus_rule_carries_the_checked_rule_file(rendered: dict[str, str]) -> None:
    (rule,) = _kinds(rendered["production"], "PrometheusRule")
    # the rule file with each ${name} replaced by values.yaml's threshold
    text = chart_path("rules", "citydesk.rules.yaml").read_text()
    values = yaml.safe_load(chart_path("values.yaml").read_text())
    for name, value in values["metrics"]["prometheusRule"]["thresholds"].items():
        text = text.replace("${" + name + "}", str(value))
    assert rule["spec"] == yaml.safe_load(text)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_ship_as_config_maps_for_the_grafana_sidecar(rendered: dict[str, str]) -> None:
    maps = [
        doc
        for doc in _kinds(rendered["production"], "ConfigMap")
        if doc["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    shipped = {key: json.loads(value) for doc in maps for key, value in doc["data"].items()}
    files = {
        f"citydesk-{path.stem}.json": json.loads(path.read_text())
        for path in chart_path("dashboards").glob("*.json")
    }
    assert shipped == files and len(files) == 2
    assert all(doc["metadata"]["namespace"] == "monitoring" for doc in maps)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_autoscalers_and_disruption_budgets_point_at_rendered_deployments(
    rendered: dict[str, str], values: str
) -> None:
    manifest = rendered[values]
    deployments = {doc["metadata"]["name"]: doc for doc in _kinds(manifest, "Deployment")}
    for hpa in _kinds(manifest, "HorizontalPodAutoscaler"):
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "an HPA-managed Deployment pins replicas"
    for pdb in _kinds(manifest, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(
            _selects(selector, doc["spec"]["template"]["metadata"]["labels"])
            for doc in deployments.values()
        ), pdb["metadata"]["name"]


def _service_settings_fields(name: str) -> set[str]:
    """Setting names (CITYDESK_*) a service reads: the shared ones and its own class's."""
    fields = set(Settings.model_fields)
    settings_module = REPO / "services" / name / "settings.py"
    if settings_module.exists():
        import importlib

        module = importlib.import_module(f"services.{name}.settings")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Settings):
                fields |= set(value.model_fields)
    return {f"CITYDESK_{field.upper()}" for field in fields}


@pytest.mark.parametrize("name", PROCESS_PORTS)
def test_every_setting_the_chart_passes_is_one_the_service_reads(
    tools: DeployTools, name: str
) -> None:
    if not (REPO / "services" / name / "app.py").exists():
        pytest.skip(f"services/{name}/app.py is not written yet")
    overrides = ["--values", str(VALUE_SETS["production"])]
    chart_values = yaml.safe_load(chart_path("values.yaml").read_text())
    if chart_values["services"].get(name, {}).get("config", {}).get("env"):
        overrides += ["--set", f"services.{name}.config.content=seed: 1"]
    result = helm_template(tools, *overrides)
    assert result.returncode == 0, result.stderr
    known = _service_settings_fields(name)
    for _, container in _containers(result.stdout):
        if container["name"] == name:
            unknown = {env for env in _env(container) if env.startswith("CITYDESK_")} - known
            assert not unknown, f"{name} ignores {sorted(unknown)}"


# The fields of Strimzi's KafkaTopic and KafkaUser (v1beta2) that the chart sets, with the
# values the operators accept; an unknown field or value fails here as it would there.
_ACL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["resource", "operations"],
    "properties": {
        "resource": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "name", "patternType"],
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string", "minLength": 1},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": ["Read", "Write", "Create", "Delete", "Alter", "Describe",
                               "ClusterAction", "AlterConfigs", "DescribeConfigs",
                               "IdempotentWrite", "All"]},
        },
    },
}  # fmt: skip
_STRIMZI = {
    "KafkaTopic": {
        "type": "object",
        "required": ["partitions", "replicas", "topicName", "config"],
        "additionalProperties": False,
        "properties": {
            "topicName": {"type": "string"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "KafkaUser": {
        "type": "object",
        "required": ["authentication", "authorization"],
        "additionalProperties": False,
        "properties": {
            "authentication": {
                "type": "object",
                "properties": {"type": {"enum": ["tls", "scram-sha-512", "tls-external-ca"]}},
            },
            "authorization": {
                "type": "object",
                "required": ["type", "acls"],
                "properties": {
                    "type": {"enum": ["simple"]},
                    "acls": {"type": "array", "items": _ACL},
                },
            },
        },
    },
}  # fmt: skip


def test_production_declares_every_topic_and_a_user_per_writer_with_least_rights(
    rendered: dict[str, str],
) -> None:
    import jsonschema

    from shared import topics as tp

    manifest = rendered["production"]
    topics = {t["spec"]["topicName"]: t for t in _kinds(manifest, "KafkaTopic")}
    assert set(topics) == {n for t in tp.ALL for n in (t.name, t.dlq)}
    users = {u["metadata"]["name"]: u for u in _kinds(manifest, "KafkaUser")}
    for resource in [*topics.values(), *users.values()]:
        jsonschema.validate(resource["spec"], _STRIMZI[resource["kind"]])
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] == "citydesk-kafka"
    for topic in tp.ALL:
        spec = topics[topic.name]["spec"]
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == "2"
        assert spec["config"]["retention.ms"] == "-1"

    def writes(user: str) -> set[str]:
        return {
            acl["resource"]["name"]
            for acl in users[user]["spec"]["authorization"]["acls"]
            if "Write" in acl["operations"] and acl["resource"]["type"] == "topic"
        }

    for service in ("submission", "review", "scoring", "sentiment", "media"):
        owned = {t.name for t in tp.ALL if service in t.writers}
        dead_letters = {t.dlq for t in tp.ALL if service in t.readers}
        assert writes(f"citydesk-{service}") == owned | dead_letters, service
    intake = {t.name for t in tp.ALL if tp.COUNTY_SYSTEMS in t.writers}
    assert writes("county-xs") == intake
    assert [a["operations"] for a in users["county-xs"]["spec"]["authorization"]["acls"]] == [
        ["Write", "Describe"]
    ] * len(intake)  # a county reads nothing: its rejections come over HTTP

    for _, container in _containers(manifest):
        env = _env(container)
        if "CITYDESK_KAFKA_SASL_USERNAME" not in env:
            continue  # the console
        service = container["name"]
        assert env["CITYDESK_KAFKA_SASL_USERNAME"] == f"citydesk-{service}"
        assert env["CITYDESK_KAFKA_CREATE_TOPICS"] == "false"
        assert env["CITYDESK_BUS_KEYRING_FILE"] == "/etc/citydesk/bus/keyring.yaml"
        assert "CITYDESK_BUS_SIGNING_KEY" in env


def test_the_charts_topic_list_is_the_codes() -> None:
    from citydesk.cli import CHART_TOPICS, chart_topics

    assert CHART_TOPICS.read_text() == chart_topics()


def test_a_local_or_test_environment_needs_the_explicit_development_flag(
    tools: DeployTools,
) -> None:
    """``local`` and ``test`` accept HS256 tokens signed with the secret in the source: the
    chart installs them only when the values say so in so many words."""
    for environment in ("local", "test"):
        refused = helm_template(tools, "--set", f"environment={environment}")
        assert refused.returncode != 0
        assert "developmentMode" in refused.stderr, refused.stderr
    allowed = helm_template(
        tools, "--set", "environment=local", "--set", "developmentMode=true",
        "--set", "console.cookieSecure=false",
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
