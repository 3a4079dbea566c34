"""Kubernetes manifests (``lmforge deploy k8s``, the deploy step's ``target: k8s``),
checked against Kubernetes' own OpenAPI schemas with kubernetes-validate, since no
cluster is reachable here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config.load import load_settings
from lmforge.serve.config import ServeConfig

KUBERNETES = "1.30.0"  # the oldest release the manifests target (autoscaling/v2: 1.23+)


def read(folder: Path) -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))}


def test_deploy_k8s_writes_valid_manifests_for_replicas_sharing_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "k8s"
    result = CliRunner().invoke(app, [
        "deploy", "k8s", "smollm2-135m-instruct", "--set", "served_name=Support_Bot",
        "--replicas", "3", "--namespace", "support", "--image", "ghcr.io/acme/lmforge:0.1",
        "--out", str(folder), "--set", "drain_seconds=20", "--set", "guard=default",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    files = read(folder)
    assert set(files) == {"configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml",
                          "kustomization.yaml"}  # fmt: skip
    for name, manifest in files.items():
        if name != "kustomization.yaml":  # kustomize's own file, not an API object
            kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    assert files["kustomization.yaml"]["resources"] == [
        "configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml"]  # fmt: skip

    deployment = files["deployment.yaml"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["metadata"] == {"name": "lmforge-support-bot", "namespace": "support",
                                      "labels": labels}  # fmt: skip
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/acme/lmforge:0.1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    store = next(e for e in container["env"] if e["name"] == "LMFORGE_STORE_URL")
    assert store["valueFrom"]["secretKeyRef"] == {"name": "lmforge-store", "key": "url"}
    assert pod["terminationGracePeriodSeconds"] == 5 + 20 + 10  # pre-stop, drain, margin
    hpa = files["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)
    assert hpa["scaleTargetRef"]["name"] == "lmforge-support-bot"
    service = files["service.yaml"]["spec"]
    assert service["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]

    # every replica serves exactly this config (what `lmforge serve --config` reads)
    (tmp_path / "serve.yaml").write_text(files["configmap.yaml"]["data"]["serve.yaml"])
    served = load_settings(tmp_path / "serve.yaml", ServeConfig)
    assert (served.model, served.name, served.host, served.port) == (
        "smollm2-135m-instruct", "Support_Bot", "0.0.0.0", 8000)  # fmt: skip
    assert served.drain_seconds == 20 and served.guard == "default" and served.store is None
    assert served.compute_niceness == 10  # a pod only serves: its HTTP loop comes first
    assert container["args"] == ["serve", "--config", "/etc/lmforge/serve.yaml"]


def test_a_store_url_never_lands_in_the_config_map(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "deploy", "k8s", "smollm2-135m-instruct", "--out", str(tmp_path),
        "--set", "store=postgresql://u:secret@db/lmforge",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "secret" not in (tmp_path / "configmap.yaml").read_text()


def test_a_compute_niceness_the_config_sets_is_kept(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "k8s", "smollm2-135m-instruct", "--out",
                                      str(tmp_path), "--set", "compute_niceness=0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    served = yaml.safe_load((tmp_path / "configmap.yaml").read_text())["data"]["serve.yaml"]
    assert yaml.safe_load(served)["compute_niceness"] == 0


def test_a_name_without_letters_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "k8s", "smollm2-135m-instruct", "--name",
                                      "__", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "--name: '__' has no letter or digit" in result.output


def test_the_deploy_step_targets_k8s(home: Path, tmp_path: Path) -> None:
    from lmforge.pipeline.load import load_pipeline
    from lmforge.pipeline.runner import run_pipeline

    steps = [{"name": "deploy", "type": "deploy", "with": {
        "model": "smollm2-135m-instruct", "target": "k8s", "replicas": 2,
        "served_name": "support"}}]  # fmt: skip
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "to-k8s", "steps": steps}))
    outputs = run_pipeline(load_pipeline(tmp_path / "p.yaml"), track=False).outputs("deploy")
    folder = Path(outputs["files"][0]).parent
    assert outputs["command"] == f"kubectl apply -k {folder}"
    deployment = read(folder)["deployment.yaml"]
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    assert deployment["metadata"]["name"] == "support" and deployment["spec"]["replicas"] == 2
    steps[0]["with"] |= {"start": True}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "to-k8s", "steps": steps}))
    with pytest.raises(Exception, match="start: true starts a server on this machine"):
        load_pipeline(tmp_path / "p.yaml")
