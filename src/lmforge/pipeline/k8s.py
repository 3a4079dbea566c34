"""Kubernetes manifests for ``lmforge serve`` replicas (``lmforge deploy k8s``, and the
pipeline's ``deploy`` step with ``target: k8s``).

Written into one folder, applied with ``kubectl apply -k FOLDER``:
- ``configmap.yaml``: the serve config (``serve.yaml``), mounted into every replica; a pod
  does nothing but serve, so its model threads run below its HTTP loop
  (``compute_niceness: 10`` unless the config sets it);
- ``deployment.yaml``: the replicas, each running ``lmforge serve --config``, with a
  readiness probe on ``/ready`` (a replica that is loading, or draining, takes no
  traffic), a liveness probe on ``/health``, resource requests, the store's URL from a
  Secret (``LMFORGE_STORE_URL``: replicas share one PostgreSQL store), and a grace period
  longer than the server's drain timeout, after a short pre-stop pause that lets the
  Service stop routing to a pod before it is told to stop;
- ``service.yaml``: a ClusterIP Service in front of the replicas;
- ``hpa.yaml``: a HorizontalPodAutoscaler on CPU utilization;
- ``kustomization.yaml``: the list of the above.

The Secret itself is not written (it holds a password): create it with ``kubectl create
secret generic NAME --from-literal=url=postgresql://...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text
from lmforge.serve.config import ServeConfig

CONFIG_DIR = "/etc/lmforge"
HOME_DIR = "/data/lmforge"
PRE_STOP_SECONDS = 5  # endpoints are removed asynchronously: keep serving meanwhile
MAX_NAME = 52  # object names are DNS labels (63), and the ConfigMap adds "-config"
POD_NICENESS = 10  # compute_niceness where the config leaves it: a pod only serves


@dataclass(frozen=True)
class K8sOptions:
    """How the replicas run on the cluster."""

    name: str
    image: str = "lmforge:latest"
    replicas: int = 2
    max_replicas: int | None = None  # the autoscaler's ceiling; default: twice replicas
    namespace: str | None = None
    cpu: str = "2"  # requested per replica
    memory: str = "4Gi"  # requested per replica, and its limit
    store_secret: str = "lmforge-store"  # a Secret whose key "url" is the store's URL
    target_cpu_percent: int = 70


def manifests(config: ServeConfig, options: K8sOptions) -> dict[str, dict[str, Any]]:
    """The manifests, by file name, for serving ``config`` as ``options`` say."""
    labels = {"app.kubernetes.io/name": "lmforge", "app.kubernetes.io/instance": options.name}
    settings = config.model_dump(mode="json", exclude_defaults=True)
    settings |= {"model": config.model, "host": "0.0.0.0"}  # reachable from the Service
    settings.pop("store", None)  # from the Secret, never in a ConfigMap
    chosen = "compute_niceness" in config.model_fields_set
    settings["compute_niceness"] = config.compute_niceness if chosen else POD_NICENESS
    port = config.port
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(f"{options.name}-config", options, labels),
        "data": {"serve.yaml": yaml.safe_dump(settings, sort_keys=False)},
    }  # fmt: skip
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5,
             "failureThreshold": 2, "timeoutSeconds": 2}  # fmt: skip
    container = {
        "name": "lmforge",
        "image": options.image,
        "args": ["serve", "--config", f"{CONFIG_DIR}/serve.yaml"],
        "command": ["lmforge"],
        "ports": [{"name": "http", "containerPort": port}],
        "env": [
            {"name": "LMFORGE_HOME", "value": HOME_DIR},
            {"name": "LMFORGE_STORE_URL", "valueFrom": {"secretKeyRef": {
                "name": options.store_secret, "key": "url"}}},
        ],
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"},
                          "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2},
        "startupProbe": {**probe, "failureThreshold": 120},  # loading a model takes a while
        "resources": {"requests": {"cpu": options.cpu, "memory": options.memory},
                      "limits": {"memory": options.memory}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "home", "mountPath": HOME_DIR}],
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _metadata(options.name, options, labels),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds":
                        PRE_STOP_SECONDS + config.drain_seconds + 10,
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{options.name}-config"}},
                        {"name": "home", "emptyDir": {}},
                    ],
                },
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _metadata(options.name, options, labels),
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80,
                                                "targetPort": "http"}]},
    }  # fmt: skip
    autoscaler = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(options.name, options, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": options.name},
            "minReplicas": options.replicas,
            "maxReplicas": options.max_replicas or 2 * options.replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": options.target_cpu_percent}}}],
        },
    }  # fmt: skip
    files = {"configmap.yaml": config_map, "deployment.yaml": deployment,
             "service.yaml": service, "hpa.yaml": autoscaler}  # fmt: skip
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": list(files)}  # fmt: skip
    return {**files, "kustomization.yaml": kustomization}


def write_manifests(config: ServeConfig, options: K8sOptions, folder: Path) -> list[Path]:
    """Write ``manifests`` into ``folder`` (each file atomically); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file, manifest in manifests(config, options).items():
        header = f"# Written by lmforge for {options.name}: kubectl apply -k {folder}\n"
        atomic_write_text(folder / file, header + yaml.safe_dump(manifest, sort_keys=False))
        written.append(folder / file)
    return written


def kubernetes_name(name: str, field: str) -> str:
    """``name`` made a valid Kubernetes object name (lower case, ``-`` for other
    characters), or an error naming ``field`` when nothing of it is left.

    Raises:
        LmforgeError: no letter or digit in ``name``.
    """
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_NAME]
    if not cleaned:
        raise LmforgeError(f"{field}: {name!r} has no letter or digit to name Kubernetes "
                           "objects with; give e.g. --name support-bot")  # fmt: skip
    return cleaned.rstrip("-")


def _metadata(name: str, options: K8sOptions, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if options.namespace:
        metadata["namespace"] = options.namespace
    return metadata
