"""The Kubernetes manifests, checked offline: schemas, policy scan, and what operators rely on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import gateway.config
from gateway.config import upstream_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30.0"
CHECKOV = os.environ.get("CHECKOV", str(ROOT / ".venv-tools" / "bin" / "checkov"))
OVERLAYS = ("development", "production")


@cache
def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (kubectl kustomize)"
    output = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in render(overlay) if o["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects(overlay, kind) if o["metadata"]["name"] == name]
    return found


def gateway_container(overlay: str) -> dict[str, Any]:
    (container,) = one(overlay, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    return container


def config(overlay: str) -> dict[str, str]:
    (configmap,) = objects(overlay, "ConfigMap")
    data: dict[str, str] = configmap["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    for obj in render(overlay):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_drain_match_the_gateway(overlay: str) -> None:
    deployment = one(overlay, "Deployment", "gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(overlay)
    assert container["ports"][0]["containerPort"] == 8000
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", " ".join(pre_stop)).group(1))  # type: ignore[union-attr]
    grace = float(config(overlay)["GATEWAY_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] >= pause + grace
    assert container["resources"]["limits"] and container["resources"]["requests"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    for deployment in objects(overlay, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_production_runs_three_replicas_sharing_redis() -> None:
    assert one("production", "Deployment", "gateway")["spec"]["replicas"] >= 3
    assert one("production", "HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] >= 3
    assert one("production", "PodDisruptionBudget", "gateway")["spec"]["minAvailable"] == 2
    assert one("production", "Service", "gateway-redis")
    env = {e["name"]: e for e in gateway_container("production")["env"]}
    assert env["GATEWAY_CACHE_URL"]["value"].startswith(
        "redis://:$(REDIS_PASSWORD)@gateway-redis:6379/"
    )
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "gateway-redis"
    assert config("production")["GATEWAY_PROFILE"] == "production"
    assert not objects("production", "Secret"), "secret values are never committed"


def test_development_runs_one_replica_with_the_memory_cache() -> None:
    assert one("development", "Deployment", "gateway")["spec"]["replicas"] == 1
    assert config("development")["GATEWAY_PROFILE"] == "development"
    assert config("development")["GATEWAY_CACHE_URL"] == "memory://"
    assert not [
        d for d in objects("development", "Deployment") if d["metadata"]["name"] != "gateway"
    ]


def known_variables() -> set[str]:
    source = Path(gateway.config.__file__).read_text()
    names = set(re.findall(r'"(GATEWAY_[A-Z_]+)"', source))
    return names | set(upstream_variables("oma")) | set(upstream_variables("cbc"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_variable_is_one_the_gateway_reads(overlay: str) -> None:
    assert set(config(overlay)) <= known_variables()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_egress_is_dns_redis_and_https_only(overlay: str) -> None:
    policy = one(overlay, "NetworkPolicy", "gateway")
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 6379, 443}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("framework", "target"),
    [("kubernetes", "development"), ("kubernetes", "production"), ("dockerfile", "Containerfile")],
)
def test_checkov_passes_with_only_the_named_waivers(
    framework: str, target: str, tmp_path: Path
) -> None:
    assert Path(CHECKOV).exists(), "checkov is installed into .venv-tools by .ci/setup"
    waivers: dict[str, str] = yaml.safe_load((K8S / "checkov-waivers.yaml").read_text())
    if framework == "kubernetes":
        path = tmp_path / f"{target}.yaml"
        path.write_text(yaml.safe_dump_all(render(target)))
    else:
        path = tmp_path / "Dockerfile"
        shutil.copy(K8S / target, path)
    result = subprocess.run(
        [CHECKOV, "-f", str(path), "--framework", framework, "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = {
        (check["check_id"], check["resource"])
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    }
    unexplained = {(check, resource) for check, resource in failed if check not in waivers}
    assert not unexplained
