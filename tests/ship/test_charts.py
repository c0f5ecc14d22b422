"""The Helm charts (charts/traxo, charts/traxo-agent): linted, rendered with default and full values, every
manifest validated against Kubernetes' schemas, and what matters in them checked against the programs
they run (the env each reads, the flags each takes)."""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import trustme
import yaml

from tests.processes import BIN, command_env, free_port, run_traxo, start_traxo, stop, wait_healthy
from tests.tools import require_program
from tests.waiting import eventually_sync

REPOSITORY = Path(__file__).resolve().parents[2]
CONTROL_PLANE = REPOSITORY / "charts" / "traxo"
AGENT = REPOSITORY / "charts" / "traxo-agent"
CONTROL_PLANE_FULL = CONTROL_PLANE / "ci" / "full-values.yaml"
AGENT_MINIMAL = AGENT / "ci" / "minimal-values.yaml"
AGENT_FULL = AGENT / "ci" / "full-values.yaml"
POSTGRES = ("database.url=postgresql://traxo:secret@db:5432/traxo",)
# The charts' kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27", "1.37")
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> str:
    return require_program("helm")


@functools.cache
def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


def _template_args(chart: Path, files: tuple[Path, ...], sets: tuple[str, ...], release: str) -> list[str]:
    args = ["template", release, str(chart), "--namespace", "monitoring"]
    for values in files:
        args += ["--values", str(values)]
    for assignment in sets:  # NAME=VALUE for --set, or a flag of its own (--set-json=...)
        args += [assignment] if assignment.startswith("--") else ["--set", assignment]
    return args


def render(
    helm: str, chart: Path, *files: Path, sets: tuple[str, ...] = (), release: str = "traxo"
) -> list[Manifest]:
    done = _helm(helm, *_template_args(chart, files, sets, release))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_failure(helm: str, chart: Path, *files: Path, sets: tuple[str, ...] = ()) -> str:
    done = _helm(helm, *_template_args(chart, files, sets, "traxo"))
    assert done.returncode != 0, f"helm template succeeded with {sets}"
    return done.stderr


def only(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    present = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {present}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(workload: Manifest, name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(workload)["containers"] if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    """NAME -> value, or the valueFrom mapping for values from Secrets and the downward API."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# --- prometheus-operator's kinds --------------------------------------------------------------------
# Kubernetes' schemas do not hold CRDs. These are the part of monitoring.coreos.com/v1 the charts
# write: the CRDs' required fields, their types and patterns, and no field the CRDs lack.
_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_SECRET_KEY = {
    "type": "object",
    "required": ["key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}},
    "additionalProperties": False,
}
_ENDPOINT = {
    "port": {"type": "string"},
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"enum": ["http", "https"]},
    "interval": _DURATION,
    "scrapeTimeout": _DURATION,
    "honorLabels": {"type": "boolean"},
    "bearerTokenSecret": _SECRET_KEY,
}
_EXPRESSION = {
    "type": "object",
    "required": ["key", "operator"],
    "properties": {
        "key": {"type": "string"},
        "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {
        "matchLabels": {**_LABELS, "minProperties": 1},
        "matchExpressions": {"type": "array", "items": _EXPRESSION},
    },
    "additionalProperties": False,
}


def _monitor_schema(kind: str, endpoints: str) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"type": "object", "properties": _ENDPOINT, "required": ["port"]}
    endpoint["additionalProperties"] = False
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": _NAME, "labels": _LABELS, "annotations": _LABELS},
                "additionalProperties": False,
            },
            "spec": {
                "type": "object",
                "required": ["selector", endpoints],
                "properties": {
                    "selector": _SELECTOR,
                    endpoints: {"type": "array", "minItems": 1, "items": endpoint},
                },
                "additionalProperties": False,
            },
        },
    }


MONITORING_SCHEMAS = {
    "ServiceMonitor": _monitor_schema("ServiceMonitor", "endpoints"),
    "PodMonitor": _monitor_schema("PodMonitor", "podMetricsEndpoints"),
}


def validate(manifest: Manifest) -> None:
    """Against Kubernetes' strict schemas (unknown fields are errors), or ours for the monitoring CRDs; a
    kind in neither fails (SchemaNotFoundError, KeyError) rather than passing unchecked."""
    where = f"{manifest['kind']} {manifest['metadata']['name']}"
    if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
        try:
            jsonschema.validate(manifest, MONITORING_SCHEMAS[manifest["kind"]])
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.absolute_path)}")
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} (Kubernetes {version}): {exc.message} at {list(exc.absolute_path)}")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) as Kubernetes and prometheus-operator apply it."""
    operators = {
        "In": lambda e: labels.get(e["key"]) in e["values"],
        "NotIn": lambda e: labels.get(e["key"]) not in e["values"],
        "Exists": lambda e: e["key"] in labels,
        "DoesNotExist": lambda e: e["key"] not in labels,
    }
    expressions = selector.get("matchExpressions", [])
    return matches(selector.get("matchLabels", {}), labels) and all(
        operators[e["operator"]](e) for e in expressions
    )


def check_wiring(manifests: list[Manifest]) -> None:
    """Every Service selects pods and names their ports, every Ingress a Service's port, every monitor
    what it scrapes; every mounted volume exists."""
    pods = [m["spec"]["template"] for m in manifests if m["kind"] in {"Deployment", "StatefulSet"}]

    def pod_ports(template: dict[str, Any]) -> set[str]:
        return {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    services = [m for m in manifests if m["kind"] == "Service"]
    for service in services:
        selected = [p for p in pods if matches(service["spec"]["selector"], p["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            assert all(port["targetPort"] in pod_ports(p) for p in selected), port
    service_ports = {s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]} for s in services}
    for ingress in (m for m in manifests if m["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["port"]["name"] in service_ports.get(backend["name"], ()), backend
    for monitor in (m for m in manifests if m["kind"] == "ServiceMonitor"):
        # prometheus-operator scrapes, for each endpoint, the selected Services that have its port.
        scraped = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
        assert scraped, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        ports = [{p["name"] for p in s["spec"]["ports"]} for s in scraped]
        endpoints = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
        assert all(any(port in names for names in ports) for port in endpoints), (endpoints, ports)
        assert all(names & endpoints for names in ports), (endpoints, ports)  # no Service is for nothing
    for monitor in (m for m in manifests if m["kind"] == "PodMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        scraped = [p for p in pods if matches(selector, p["metadata"]["labels"])]
        assert scraped, f"PodMonitor {monitor['metadata']['name']} selects no pod"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert all(endpoint["port"] in pod_ports(p) for p in scraped)
    for workload in (m for m in manifests if m["kind"] in WORKLOADS):
        spec = pod_spec(workload)
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for c in containers(workload):
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes, c["name"]


# --- lint, render, validate -------------------------------------------------------------------------

RENDERS = {
    "control-plane-defaults": (CONTROL_PLANE, (), ()),
    "control-plane-postgres": (CONTROL_PLANE, (), POSTGRES),
    "control-plane-full": (CONTROL_PLANE, (CONTROL_PLANE_FULL,), ()),
    "control-plane-sqlite-volume": (CONTROL_PLANE, (), ("database.sqlite.persistence.enabled=true",)),
    "agent-minimal": (AGENT, (AGENT_MINIMAL,), ()),
    "agent-full": (AGENT, (AGENT_FULL,), ()),
    "agent-restricted": (AGENT, (AGENT_MINIMAL,), ("ping.netRaw=false",)),
    "agent-podmonitor": (
        AGENT,
        (AGENT_MINIMAL,),
        ("metrics.service.enabled=false", "metrics.podMonitor.enabled=true", "replicaCount=0"),
    ),
}
_ALWAYS = {"ServiceAccount", "PodDisruptionBudget"}
EXPECTED_KINDS = {
    "control-plane-defaults": _ALWAYS | {"Deployment", "Service", "Secret"},
    "control-plane-postgres": _ALWAYS | {"Deployment", "Service", "Secret", "Job"},
    "control-plane-full": _ALWAYS
    | {"Deployment", "Service", "Job", "Ingress", "HorizontalPodAutoscaler", "ServiceMonitor"},
    "control-plane-sqlite-volume": _ALWAYS | {"Deployment", "Service", "Secret", "PersistentVolumeClaim"},
    "agent-minimal": _ALWAYS | {"StatefulSet", "Service", "Secret"},
    "agent-restricted": _ALWAYS | {"StatefulSet", "Service", "Secret"},
    "agent-full": _ALWAYS | {"StatefulSet", "Service", "ServiceMonitor"},
    "agent-podmonitor": _ALWAYS | {"StatefulSet", "Secret", "PodMonitor"},
}
LINTED = ["control-plane-defaults", "control-plane-full", "agent-minimal", "agent-full"]


@pytest.mark.parametrize("case", LINTED)
def test_helm_lint_strict_passes(helm: str, case: str) -> None:
    chart, files, _ = RENDERS[case]
    args = ["lint", "--strict", str(chart), *[arg for f in files for arg in ("--values", str(f))]]
    done = _helm(helm, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    # lint reports a template's `fail` as [INFO] and still passes: the renders below catch those.
    assert "[ERROR]" not in done.stdout and "[WARNING]" not in done.stdout, done.stdout


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_every_rendered_manifest_is_valid(helm: str, case: str) -> None:
    chart, files, sets = RENDERS[case]
    manifests = render(helm, chart, *files, sets=sets)
    assert {m["kind"] for m in manifests} == EXPECTED_KINDS[case]
    for manifest in manifests:
        validate(manifest)
    check_wiring(manifests)


def test_the_validation_itself_rejects_unknown_fields(helm: str) -> None:
    deployment = only(render(helm, CONTROL_PLANE), "Deployment")
    container(deployment, "api")["livenessProbe"]["httpGett"] = {"path": "/healthz"}
    with pytest.raises(pytest.fail.Exception, match="httpGett"):
        validate(deployment)
    monitor = only(render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["bearerTokenSecrets"] = {}
    with pytest.raises(pytest.fail.Exception, match="bearerTokenSecrets"):
        validate(monitor)


# --- the control plane ------------------------------------------------------------------------------


def test_the_migration_runs_as_a_hook_before_install_and_upgrade(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE, sets=POSTGRES)
    job = only(manifests, "Job")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hooks["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    migrate = container(job, "migrate")
    assert migrate["command"] + migrate["args"] == ["traxo", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # The release's Secret does not exist yet before install: the Job reads a hook Secret made first.
    url = env_of(migrate)["TRAXO_DATABASE_URL"]["secretKeyRef"]
    hook_secret = only(manifests, "Secret", url["name"])
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weight = int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(hooks["helm.sh/hook-weight"])
    assert base64.b64decode(hook_secret["data"][url["key"]]) == b"postgresql://traxo:secret@db:5432/traxo"
    api = container(only(manifests, "Deployment"), "api")
    assert "--no-migrate" in api["args"]


def test_sqlite_by_default_migrates_in_its_own_pod(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE)
    assert not [m for m in manifests if m["kind"] == "Job"]
    api = container(only(manifests, "Deployment"), "api")
    assert "--migrate" in api["args"]
    assert env_of(api)["TRAXO_DATABASE_URL"] == "sqlite+aiosqlite:////var/lib/traxo/traxo.db"
    assert {"name": "data", "mountPath": "/var/lib/traxo"} in api["volumeMounts"]
    kept = render(helm, CONTROL_PLANE, sets=("database.sqlite.persistence.enabled=true",))
    deployment, claim = only(kept, "Deployment"), only(kept, "PersistentVolumeClaim")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one pod at a time on the file
    data = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("replicaCount=3",), "replicaCount is 3 but the database is SQLite"),
        (
            ("database.url=sqlite:////d/t.db", "replicaCount=2"),
            "replicaCount is 2 but the database is SQLite",
        ),
        (("autoscaling.enabled=true",), "autoscaling.enabled needs PostgreSQL"),
        (("workers.separate=true",), "workers.separate needs PostgreSQL"),
    ],
)
def test_more_than_one_process_on_sqlite_is_refused(helm: str, sets: tuple[str, ...], message: str) -> None:
    assert message in render_failure(helm, CONTROL_PLANE, sets=sets)
    # The same on PostgreSQL renders.
    postgres = tuple(s for s in sets if not s.startswith("database.url")) + POSTGRES
    render(helm, CONTROL_PLANE, sets=postgres)


def test_probes_ask_healthz_readyz_and_grpc_health(helm: str) -> None:
    api = container(only(render(helm, CONTROL_PLANE), "Deployment"), "api")
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": 8000, "grpc": 50051}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["startupProbe"]["grpc"] == {"port": 50051}
    # The kubelet's gRPC probe has no TLS: with TLS on, the startup probe only connects.
    tls = container(only(render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL), "Deployment", "traxo"), "api")
    assert tls["startupProbe"]["tcpSocket"] == {"port": "grpc"}
    agent = container(only(render(helm, AGENT, AGENT_MINIMAL), "StatefulSet"), "agent")
    assert agent["ports"] == [{"name": "metrics", "containerPort": 9110, "protocol": "TCP"}]
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_pods_run_as_10001_read_only_with_no_capability_but_the_agents_net_raw(helm: str, case: str) -> None:
    chart, files, sets = RENDERS[case]
    for workload in (m for m in render(helm, chart, *files, sets=sets) if m["kind"] in WORKLOADS):
        pod = pod_spec(workload)["securityContext"]
        assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]) == (True, 10001, 10001)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(workload):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            added = context["capabilities"].get("add", [])
            net_raw = c["name"] == "agent" and case != "agent-restricted"  # ping.netRaw=false
            assert added == (["NET_RAW"] if net_raw else []), c["name"]
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts or c["name"] == "ca-bundle", c["name"]


def test_the_metrics_token_is_generated_and_sent_by_the_service_monitor(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE, sets=("serviceMonitor.enabled=true",))
    secret = only(manifests, "Secret")
    token = base64.b64decode(secret["data"]["metrics-token"]).decode()
    assert len(token) >= 32 and token.isalnum()
    wanted = {"name": secret["metadata"]["name"], "key": "metrics-token"}
    api = container(only(manifests, "Deployment"), "api")
    assert env_of(api)["TRAXO_METRICS_TOKEN"] == {"secretKeyRef": wanted}
    endpoint = only(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["bearerTokenSecret"]) == ("http", "/metrics", wanted)
    given = render(helm, CONTROL_PLANE, sets=("secrets.metricsToken=a-token-of-my-own-choosing",))
    assert base64.b64decode(only(given, "Secret")["data"]["metrics-token"]) == b"a-token-of-my-own-choosing"


def test_existing_secrets_are_read_and_no_secret_is_made(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL)
    assert not [m for m in manifests if m["kind"] == "Secret"]
    for workload in (m for m in manifests if m["kind"] in WORKLOADS):
        env = env_of(pod_spec(workload)["containers"][0])
        assert env["TRAXO_DATABASE_URL"] == {"secretKeyRef": {"name": "traxo-database", "key": "url"}}
    api = env_of(container(only(manifests, "Deployment", "traxo"), "api"))
    assert api["TRAXO_METRICS_TOKEN"] == {"secretKeyRef": {"name": "traxo-keys", "key": "metrics-token"}}
    assert api["TRAXO_SMTP_PASSWORD"] == {
        "secretKeyRef": {"name": "traxo-keys", "key": "smtp-password", "optional": True}
    }
    endpoint = only(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["bearerTokenSecret"] == {"name": "traxo-keys", "key": "metrics-token"}


def test_full_values_split_workers_scale_and_expose_grpc(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL)
    api_deployment = only(manifests, "Deployment", "traxo")
    api = container(api_deployment, "api")
    assert "--no-workers" in api["args"] and "replicas" not in api_deployment["spec"]
    worker = only(manifests, "Deployment", "traxo-worker")
    assert container(worker, "worker")["args"] == ["worker", "--no-migrate", "--metrics-port=9120"]
    assert worker["spec"]["replicas"] == 2
    hpa = only(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "traxo" and hpa["spec"]["minReplicas"] == 3
    grpc_ingress = only(manifests, "Ingress", "traxo-grpc")
    assert grpc_ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"
    backend = grpc_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "traxo-grpc", "port": {"name": "grpc"}}  # the gRPC-only Service
    http_backend = only(manifests, "Ingress", "traxo-http")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert http_backend["service"]["port"] == {"name": "http"}
    assert only(manifests, "Service", "traxo-grpc")["spec"]["type"] == "LoadBalancer"
    env = env_of(api)
    assert env["TRAXO_PUBLIC_URL"] == "https://status.example.com"
    assert (env["TRAXO_GRPC_TLS_CERT"], env["TRAXO_GRPC_TLS_KEY"]) == (
        "/etc/traxo/grpc-tls/tls.crt",
        "/etc/traxo/grpc-tls/tls.key",
    )
    # Without publicUrl, the first Ingress host is where users reach Traxo.
    derived = render(helm, CONTROL_PLANE, sets=("ingress.http.enabled=true",))
    assert (
        env_of(container(only(derived, "Deployment"), "api"))["TRAXO_PUBLIC_URL"]
        == "https://traxo.example.com"
    )


def test_separate_workers_serve_probes_and_metrics_that_the_service_monitor_scrapes(helm: str) -> None:
    manifests = render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL)
    worker = container(only(manifests, "Deployment", "traxo-worker"), "worker")
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9120, "protocol": "TCP"}]
    assert worker["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = only(manifests, "Service", "traxo-worker")
    assert service["spec"]["clusterIP"] == "None"  # Prometheus scrapes each pod; nothing else calls them
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9120, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitor = only(manifests, "ServiceMonitor")
    token = {"name": "traxo-keys", "key": "metrics-token"}
    assert env_of(worker)["TRAXO_METRICS_TOKEN"] == {"secretKeyRef": token}
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert set(endpoints) == {"http", "metrics"}
    assert all((e["path"], e["bearerTokenSecret"]) == ("/metrics", token) for e in endpoints.values())
    services = [m for m in manifests if m["kind"] == "Service"]
    scraped = {
        s["metadata"]["name"]
        for s in services
        if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    }
    assert scraped == {"traxo", "traxo-worker"}  # not the gRPC-only Service
    # Another port moves the flag, the container's port and the Service's together.
    moved = render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL, sets=("workers.metricsPort=9300",))
    worker = container(only(moved, "Deployment", "traxo-worker"), "worker")
    assert worker["args"][2:] == ["--metrics-port=9300"] and worker["ports"][0]["containerPort"] == 9300
    assert only(moved, "Service", "traxo-worker")["spec"]["ports"][0]["port"] == 9300
    # Workers in the API pods: the API's endpoint alone, and no worker Service.
    together = render(helm, CONTROL_PLANE, sets=("serviceMonitor.enabled=true",))
    assert [e["port"] for e in only(together, "ServiceMonitor")["spec"]["endpoints"]] == ["http"]
    assert [m["metadata"]["name"] for m in together if m["kind"] == "Service"] == ["traxo"]


GRACE_MARGIN = 5  # seconds past the drain for the process to close its database and exit


def test_the_grace_period_outlasts_the_drain_the_containers_are_told(helm: str) -> None:
    """terminationGracePeriodSeconds (the kubelet's SIGKILL) against what the processes read from
    their env: delay + deadline + a margin for `traxo api`/`traxo worker`, twice the agent's
    deadline (its checks', then their acknowledgements') + a margin for the agent."""
    from agent.settings import parse_settings
    from control_plane.settings import Settings

    renders = [
        render(helm, CONTROL_PLANE),
        render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL),
        render(
            helm,
            CONTROL_PLANE,
            CONTROL_PLANE_FULL,
            sets=("shutdown.delaySeconds=15", "shutdown.deadlineSeconds=60"),
        ),
    ]
    graces = []
    for manifests in renders:
        for workload in (m for m in manifests if m["kind"] == "Deployment"):
            for c in pod_spec(workload)["containers"]:
                env = {
                    n.removeprefix("TRAXO_").lower(): v for n, v in env_of(c).items() if isinstance(v, str)
                }
                settings = Settings.model_validate({"database_url": "postgresql://traxo@db/traxo", **env})
                drain = settings.shutdown_delay_seconds + settings.shutdown_deadline_seconds
                grace = pod_spec(workload)["terminationGracePeriodSeconds"]
                assert grace >= drain + GRACE_MARGIN, (workload["metadata"]["name"], grace, drain)
                graces.append((workload["metadata"]["name"], settings.shutdown_delay_seconds, grace))
    # The chart's defaults: a 5 s delay (endpoints are removed asynchronously) in both containers.
    assert graces[:3] == [("traxo", 5, 30), ("traxo", 5, 30), ("traxo-worker", 5, 30)]
    assert graces[-1] == ("traxo-worker", 15, 80)
    for files, sets in (
        ((AGENT_MINIMAL,), ()),
        ((AGENT_FULL,), ()),
        ((AGENT_MINIMAL,), ("shutdownDeadline=45",)),
    ):
        statefulset = only(render(helm, AGENT, *files, sets=sets), "StatefulSet")
        plain = {n: v for n, v in env_of(container(statefulset, "agent")).items() if isinstance(v, str)}
        agent = parse_settings([], env={**plain, "TRAXO_AGENT_TOKEN": "t", "TRAXO_AGENT_NAME": "pod-0"})
        grace = pod_spec(statefulset)["terminationGracePeriodSeconds"]
        assert grace >= 2 * agent.shutdown_deadline_s + GRACE_MARGIN, (sets, grace, agent.shutdown_deadline_s)
        graces.append(("agent", agent.shutdown_deadline_s, grace))
    assert graces[-3:] == [("agent", 10, 30), ("agent", 20, 50), ("agent", 45, 100)]


def test_the_control_plane_containers_set_only_settings_traxo_reads(helm: str) -> None:
    from control_plane.commands.main import main
    from control_plane.settings import Settings

    manifests = render(helm, CONTROL_PLANE, CONTROL_PLANE_FULL) + render(helm, CONTROL_PLANE, sets=POSTGRES)
    for workload in (m for m in manifests if m["kind"] in WORKLOADS):
        for c in containers(workload):
            env = env_of(c)
            fields = {name.removeprefix("TRAXO_").lower() for name in env if name.startswith("TRAXO_")}
            assert fields <= set(Settings.model_fields), f"{c['name']}: {fields - set(Settings.model_fields)}"
            plain = {name: value for name, value in env.items() if isinstance(value, str)}
            plain.setdefault("TRAXO_DATABASE_URL", "postgresql://traxo@db/traxo")
            built = Settings.model_validate({n.removeprefix("TRAXO_").lower(): v for n, v in plain.items()})
            assert built.log_format == "json"
            assert c["command"] == ["traxo"]
            command = main.commands[c["args"][0]]
            command.make_context(c["args"][0], list(c["args"][1:]))  # raises on an unknown flag


def _resolved_env(c: dict[str, Any], secrets: dict[str, dict[str, str]], pod_name: str) -> dict[str, str]:
    """A container's env as the kubelet would set it: Secrets' keys decoded, the pod's name filled in."""
    env = {}
    for name, value in env_of(c).items():
        if isinstance(value, dict) and "secretKeyRef" in value:
            ref = value["secretKeyRef"]
            value = base64.b64decode(secrets[ref["name"]][ref["key"]]).decode()
        elif isinstance(value, dict):
            assert value == {"fieldRef": {"fieldPath": "metadata.name"}}, value
            value = pod_name
        env[name] = value
    return env


def _secrets(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {m["metadata"]["name"]: m["data"] for m in manifests if m["kind"] == "Secret"}


def _start_agent(agent: dict[str, Any], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as output:  # the child keeps its own copy
        return subprocess.Popen(
            [str(BIN / "traxo-agent")],
            env=command_env(None, **env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def test_the_rendered_api_and_agent_containers_run_and_answer_their_probes(helm: str, tmp_path: Path) -> None:
    """`traxo api` and `traxo-agent` run with their containers' args and env: the probes' paths and
    gRPC health answer, /metrics wants the token the ServiceMonitor sends, the agent registers, and
    on SIGTERM the API turns unready at once, still answers through the delay and exits 0 well within
    the pod's grace period, having logged JSON."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    http_port, grpc_port, agent_port = free_port(), free_port(), free_port()
    database = f"sqlite+aiosqlite:///{tmp_path}/traxo.db"
    sets = (
        f"service.httpPort={http_port}",
        f"service.grpcPort={grpc_port}",
        f"database.url={database}",
        "serviceMonitor.enabled=true",
        "shutdown.delaySeconds=2",  # long enough to see /readyz answer 503 while the listener is open
    )
    manifests = render(helm, CONTROL_PLANE, sets=sets)
    api = container(only(manifests, "Deployment"), "api")
    # Also migrates the new file, so the API's own migration on start finds nothing to do.
    output = run_traxo("agents", "create-token", "--region", "eu-west-1", env=command_env(database))
    agent_sets = (
        f"controlPlane.address=127.0.0.1:{grpc_port}",
        f"token.value={output.strip().splitlines()[-1]}",
        f"metrics.port={agent_port}",
    )
    agent_manifests = render(helm, AGENT, AGENT_MINIMAL, sets=agent_sets, release="eu")
    agent = container(only(agent_manifests, "StatefulSet"), "agent")
    # The changes: listen on loopback only, not on every interface of the test machine, and keep the
    # spool in the test's directory instead of the pod's volume.
    args = [arg.replace("--host=0.0.0.0", "--host=127.0.0.1") for arg in api["args"]]
    agent_env = _resolved_env(agent, _secrets(agent_manifests), "eu-traxo-agent-0")
    agent_env |= {"TRAXO_AGENT_METRICS_HOST": "127.0.0.1", "TRAXO_AGENT_SPOOL": str(tmp_path / "spool")}
    env = _resolved_env(api, _secrets(manifests), "traxo-0")
    process = start_traxo(*args, env=command_env(None, **env), log=tmp_path / "api.log")
    agent_process = _start_agent(agent, agent_env, tmp_path / "agent.log")  # it retries until gRPC is up
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_healthy(base, process, timeout=60)
        for probe in ("livenessProbe", "readinessProbe"):
            assert httpx.get(base + api[probe]["httpGet"]["path"], timeout=5).status_code == 200
        with grpc.insecure_channel(f"127.0.0.1:{api['startupProbe']['grpc']['port']}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        endpoint = only(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
        token_ref = endpoint["bearerTokenSecret"]
        token = base64.b64decode(_secrets(manifests)[token_ref["name"]][token_ref["key"]]).decode()
        metrics = base + endpoint["path"]
        assert httpx.get(metrics, timeout=5).status_code == 401
        scraped = httpx.get(metrics, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert scraped.status_code == 200 and "# TYPE" in scraped.text

        agent_base = f"http://127.0.0.1:{agent['ports'][0]['containerPort']}"
        wait_healthy(agent_base, agent_process, timeout=60)  # /readyz: registered, assignments in hand
        assert httpx.get(agent_base + agent["livenessProbe"]["httpGet"]["path"], timeout=5).status_code == 200
        assert "traxo_agent_" in httpx.get(agent_base + "/metrics", timeout=5).text
        stop(agent_process, timeout=30)

        grace = pod_spec(only(manifests, "Deployment"))["terminationGracePeriodSeconds"]
        signalled = time.monotonic()
        process.terminate()
        readiness = base + api["readinessProbe"]["httpGet"]["path"]
        eventually_sync(
            lambda: httpx.get(readiness, timeout=1).status_code == 503, 2, "/readyz 503 on SIGTERM"
        )
        # Within the delay the listener still takes connections (the Service has yet to notice).
        assert httpx.get(base + api["livenessProbe"]["httpGet"]["path"], timeout=1).status_code == 200
        assert process.wait(timeout=grace) == 0
        assert 2 <= time.monotonic() - signalled < grace - GRACE_MARGIN
        _assert_logs_json(tmp_path / "api.log", "shutdown: done in")
    finally:
        stop(agent_process, timeout=30)
        stop(process, timeout=40)


def _assert_logs_json(log: Path, wanted: str) -> None:
    """Every log record is a JSON object a line (TRAXO_LOG_FORMAT=json), none in the text format;
    `wanted` starts one's message. Other lines (click's messages on stdout) are not records."""
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records), lines
    assert any(r["message"].startswith(wanted) for r in records), [r["message"] for r in records]
    assert not [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", line)]


def test_the_rendered_worker_container_runs_answers_its_probes_and_drains(helm: str, tmp_path: Path) -> None:
    """`traxo worker` with the split workers' container's args and env: /healthz and /readyz on the
    named port, /metrics with the token of the ServiceMonitor's worker endpoint, and on SIGTERM an
    exit 0 within the pod's grace period."""
    port = free_port()
    sets = (*POSTGRES, "workers.separate=true", "serviceMonitor.enabled=true", f"workers.metricsPort={port}")
    manifests = render(helm, CONTROL_PLANE, sets=sets)
    deployment = only(manifests, "Deployment", "traxo-worker")
    worker = container(deployment, "worker")
    assert worker["command"] == ["traxo"]
    env = _resolved_env(worker, _secrets(manifests), "traxo-worker-0")
    # The changes: SQLite in the test's directory for the chart's PostgreSQL, and loopback only.
    env["TRAXO_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/traxo.db"
    args = [*worker["args"], "--metrics-host=127.0.0.1"]
    # What the chart's migration Job does before the workers start (they do not migrate).
    subprocess.run([str(BIN / "traxo"), "migrate"], env=command_env(None, **env), check=True, timeout=120)
    process = start_traxo(*args, env=command_env(None, **env), log=tmp_path / "worker.log")
    try:
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
        base = f"http://127.0.0.1:{ports[worker['readinessProbe']['httpGet']['port']]}"
        wait_healthy(base, process, timeout=60, path=worker["readinessProbe"]["httpGet"]["path"])
        for probe in ("startupProbe", "livenessProbe"):
            assert ports[worker[probe]["httpGet"]["port"]] == port
            assert httpx.get(base + worker[probe]["httpGet"]["path"], timeout=5).status_code == 200
        endpoint = next(
            e for e in only(manifests, "ServiceMonitor")["spec"]["endpoints"] if e["port"] == "metrics"
        )
        token_ref = endpoint["bearerTokenSecret"]
        token = base64.b64decode(_secrets(manifests)[token_ref["name"]][token_ref["key"]]).decode()
        assert httpx.get(base + endpoint["path"], timeout=5).status_code == 401
        scraped = httpx.get(base + endpoint["path"], headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert scraped.status_code == 200 and "# TYPE" in scraped.text

        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        signalled = time.monotonic()
        process.terminate()
        assert process.wait(timeout=grace) == 0
        assert time.monotonic() - signalled < grace - GRACE_MARGIN
    finally:
        if process.poll() is None:
            stop(process, timeout=40)
    _assert_logs_json(tmp_path / "worker.log", "")


# --- the agent ---------------------------------------------------------------------------------------


def test_the_agent_reads_the_env_the_chart_sets(helm: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.settings import parse_settings

    with pytest.raises(SystemExit):
        parse_settings(["--help"], env={})
    flags = {word for word in capsys.readouterr().out.split() if word.startswith("--")}
    for files in ((AGENT_MINIMAL,), (AGENT_FULL,)):
        statefulset = only(render(helm, AGENT, *files), "StatefulSet")
        env = env_of(container(statefulset, "agent"))
        for name in (n for n in env if n.startswith("TRAXO_AGENT_")):
            assert "--" + name.removeprefix("TRAXO_AGENT_").lower().replace("_", "-") in flags, name
        plain = {name: value for name, value in env.items() if isinstance(value, str)}
        settings = parse_settings([], env={**plain, "TRAXO_AGENT_TOKEN": "t", "TRAXO_AGENT_NAME": "pod-0"})
        assert (settings.region, settings.log_format) == ("eu-west-1", "json")
        assert settings.metrics_port == 9110
        mounts = {m["name"]: m["mountPath"] for m in container(statefulset, "agent")["volumeMounts"]}
        assert settings.spool_path.parent == Path(mounts["spool"])
    assert env["TRAXO_AGENT_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["TRAXO_AGENT_TOKEN"] == {"secretKeyRef": {"name": "traxo-agent-eu", "key": "agent-token"}}
    assert (settings.tls, settings.max_browser_checks) == (True, 4)
    assert settings.ca_file is not None and str(settings.ca_file.parent) == mounts["extra-ca"]


def test_the_agents_full_values_wire_browser_proxy_ca_and_spool(helm: str) -> None:
    manifests = render(helm, AGENT, AGENT_FULL)
    assert not [m for m in manifests if m["kind"] == "Secret"]  # the token is the user's Secret
    statefulset = only(manifests, "StatefulSet")
    agent = container(statefulset, "agent")
    assert agent["image"] == "ghcr.io/traxo/traxo-agent:0.1.0-browser"
    assert "command" not in agent  # the image's entrypoint picks the NET_RAW interpreter
    env = env_of(agent)
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        assert env[name] == "http://proxy.corp.example:3128"
    assert env["no_proxy"] == env["NO_PROXY"] == "10.0.0.0/8,.svc,.cluster.local"
    assert env["SSL_CERT_FILE"] == "/etc/traxo-agent/ca-bundle/ca-certificates.crt"
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    ca_items = [{"key": "corp-root.pem", "path": "ca.crt"}]
    assert volumes["extra-ca"]["configMap"] == {"name": "corp-ca", "items": ca_items}
    assert "spool" not in volumes
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert (claim["metadata"]["name"], claim["spec"]["resources"]["requests"]["storage"]) == ("spool", "2Gi")
    sysctls = pod_spec(statefulset)["securityContext"]["sysctls"]
    assert sysctls == [{"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}]
    assert pod_spec(statefulset)["terminationGracePeriodSeconds"] == 50  # shutdownDeadline 20 * 2 + 10


def test_the_ca_bundle_init_container_appends_the_extra_ca_to_the_system_ones(
    helm: str, tmp_path: Path
) -> None:
    statefulset = only(render(helm, AGENT, AGENT_FULL), "StatefulSet")
    (bundle_maker,) = pod_spec(statefulset)["initContainers"]
    program, flag, script, source, target = bundle_maker["command"]
    assert (program, flag, source) == ("python3", "-c", "/etc/traxo-agent/extra-ca/ca.crt")
    assert target == env_of(container(statefulset, "agent"))["SSL_CERT_FILE"]
    authority = trustme.CA()
    extra, bundle = tmp_path / "ca.crt", tmp_path / "ca-certificates.crt"
    authority.cert_pem.write_to_path(str(extra))
    subprocess.run([sys.executable, "-c", script, str(extra), str(bundle)], check=True, timeout=30)
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    # What the agent's Python gets with SSL_CERT_FILE pointing at the bundle: the system CAs and ours.
    probe = "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'])"
    with_bundle = {"SSL_CERT_FILE": str(bundle)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=with_bundle, capture_output=True, text=True, timeout=30
    )
    assert int(done.stdout) == system + 1, done.stderr
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    refused = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "junk.crt"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0 and "holds no PEM certificate" in refused.stderr


def test_two_regions_install_side_by_side_in_one_namespace(helm: str) -> None:
    releases = {}
    for release, region in (("agent-eu", "eu-west-1"), ("agent-us", "us-east-1")):
        sets = (f"region={region}", "metrics.serviceMonitor.enabled=true")
        releases[region] = render(helm, AGENT, AGENT_MINIMAL, sets=sets, release=release)
    names = [(m["kind"], m["metadata"]["name"]) for manifests in releases.values() for m in manifests]
    assert len(names) == len(set(names)), sorted(names)
    eu, us = (only(releases[r], "StatefulSet") for r in ("eu-west-1", "us-east-1"))
    assert env_of(container(eu, "agent"))["TRAXO_AGENT_REGION"] == "eu-west-1"
    assert env_of(container(us, "agent"))["TRAXO_AGENT_REGION"] == "us-east-1"
    # No selector of one release takes the other's pods (Services, PDBs, monitors included).
    for mine, theirs in ((releases["eu-west-1"], us), (releases["us-east-1"], eu)):
        labels = theirs["spec"]["template"]["metadata"]["labels"]
        for manifest in mine:
            selector = manifest.get("spec", {}).get("selector")
            if selector:
                where = manifest["metadata"]["name"]
                assert not selects(
                    selector if "matchLabels" in selector else {"matchLabels": selector}, labels
                ), where


# --- docs ---------------------------------------------------------------------------------------------

# Values that are passed through whole (Kubernetes' own types, free-form maps): documented as one key.
_WHOLE = {"resources", "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe"}
_WHOLE |= {"startupProbe", "annotations", "labels", "env", "podAnnotations", "podLabels", "nodeSelector"}
_WHOLE |= {"affinity"}


def _value_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in _WHOLE:
            yield from _value_keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


@pytest.mark.parametrize("chart", [CONTROL_PLANE, AGENT], ids=lambda chart: chart.name)
def test_every_value_is_in_the_docs_table(chart: Path) -> None:
    docs = (REPOSITORY / "docs" / "deploy-kubernetes.md").read_text()
    table = docs.split(f"### Values of `charts/{chart.name}`")[1].split("\n## ")[0]
    keys = list(_value_keys(yaml.safe_load((chart / "values.yaml").read_text())))
    assert [key for key in keys if f"`{key}`" not in table] == []
    schema = json.loads((chart / "values.schema.json").read_text())
    assert set(keys) - {"global"} <= set(_schema_keys(schema))


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key
        yield from _schema_keys(sub, f"{prefix}{key}.")


# --- values the schema or the templates refuse --------------------------------------------------------

CP = CONTROL_PLANE
NOT_INT, NOT_STRING = "Expected: integer, given: number", "Expected: integer, given: string"
REFUSED = [
    (CP, (), ("replicaCount=two",), f"replicaCount: Invalid type. {NOT_STRING}"),
    (CP, (), ("--set-json=replicaCount=1.5",), f"replicaCount: Invalid type. {NOT_INT}"),
    (CP, (), ("replicas=2",), "Additional property replicas is not allowed"),
    (CP, (), ("config.logFormat=xml",), "config.logFormat: config.logFormat must be one of"),
    (CP, (), ("database.url=mysql://db/traxo",), "database.url: Does not match pattern"),
    (CP, (), ("serviceMonitor.interval=often",), "serviceMonitor.interval: Does not match pattern"),
    (CP, (), ("workers.metricsPort=0",), "workers.metricsPort: Must be greater than or equal to 1"),
    (CP, (), ("shutdown.deadlineSeconds=0",), "shutdown.deadlineSeconds: Must be greater than or equal to 1"),
    (CP, (), ("shutdown.delaySeconds=-1",), "shutdown.delaySeconds: Must be greater than or equal to 0"),
    (
        CP,
        (),
        ("shutdown.delaySeconds=20",),
        "shutdown.delaySeconds (20) must be below shutdown.deadlineSeconds (20): the delay counts within",
    ),
    (CP, (), ("database.existingSecret=db", *POSTGRES), "database.url and database.existingSecret"),
    (CP, (), ("--kube-version=1.26.0",), "chart requires kubeVersion: >=1.27.0-0"),
    (AGENT, (), ("controlPlane.address=cp:50051", "token.value=t"), "region is required"),
    (AGENT, (), ("region=eu-west-1", "token.value=t"), "controlPlane.address is required"),
    (AGENT, (AGENT_MINIMAL,), ("region=EU West",), "region: Does not match pattern"),
    (
        AGENT,
        (AGENT_MINIMAL,),
        ("controlPlane.address=https://cp.example",),
        "controlPlane.address: Does not match",
    ),
    (AGENT, (AGENT_MINIMAL,), ("--set-json=replicaCount=1.5",), f"replicaCount: Invalid type. {NOT_INT}"),
    (AGENT, (AGENT_MINIMAL,), ("token.value=",), "token: set token.existingSecret"),
    (AGENT, (AGENT_MINIMAL,), ("extraCA.configMap=ca",), "extraCA.controlPlane needs controlPlane.tls"),
    (AGENT, (AGENT_MINIMAL,), ("proxy.https=proxy:3128",), "proxy.https: Does not match pattern"),
    (
        AGENT,
        (AGENT_MINIMAL,),
        ("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"),
        "Prometheus would scrape every agent twice",
    ),
]


@pytest.mark.parametrize(
    ("chart", "files", "sets", "message"), REFUSED, ids=[f"{c.name}:{' '.join(s)}" for c, _, s, _ in REFUSED]
)
def test_bad_values_are_refused_naming_the_field(
    helm: str, chart: Path, files: tuple[Path, ...], sets: tuple[str, ...], message: str
) -> None:
    error = render_failure(helm, chart, *files, sets=sets)
    assert message in error, f"helm template {shlex.join(sets)}: {error}"
