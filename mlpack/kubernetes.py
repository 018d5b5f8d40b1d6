"""Kubernetes manifests for serving a bundle: Deployment, Service, HPA, PDB (and a ConfigMap).

The output is plain data, rendered deterministically (same inputs, same bytes): no timestamps,
no random names. The pod runs the image ``mlpack containerize`` builds: a fixed non-root uid,
``mlpack serve`` on ``$PORT``, probes on ``/livez`` and ``/readyz``, metrics on ``/metrics``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .dockerfile import PORT
from .exceptions import ConfigError

# The image's service user (see mlpack.dockerfile.DockerOptions.uid).
UID = 1034
# uvicorn's graceful shutdown in `mlpack serve` (seconds) plus the pre-stop pause and a margin.
DRAIN_SECONDS = 30
PRE_STOP_SECONDS = 5
CONFIG_DIR = "/etc/mlpack"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


@dataclass(frozen=True)
class KubernetesOptions:
    """What ``mlpack deploy kubernetes`` takes; validated on creation."""

    image: str
    replicas: int = 1
    max_replicas: int | None = None
    cpu: str = "500m"
    memory: str = "1Gi"
    port: int = PORT
    namespace: str | None = None
    target_cpu_percent: int = 70

    def __post_init__(self) -> None:
        if not _IMAGE.match(self.image):
            raise ConfigError(f"--image is not a valid image reference: {self.image!r}")
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be at least 1, got {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ConfigError(f"--max-replicas ({self.max_replicas}) must be at least --replicas ({self.replicas})")
        if not _CPU.match(self.cpu):
            raise ConfigError(f"--cpu must be a Kubernetes CPU quantity such as 500m or 2, got {self.cpu!r}")
        if not _MEMORY.match(self.memory):
            raise ConfigError(f"--memory must be a Kubernetes memory quantity such as 512Mi or 1Gi, got {self.memory!r}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
        if self.namespace is not None and not _is_label(self.namespace):
            raise ConfigError(f"--namespace must be a DNS label (lower case, digits, '-'), got {self.namespace!r}")

    @property
    def workers(self) -> int:
        cores = int(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)
        return max(1, int(cores))

    @property
    def hpa_max(self) -> int:
        return self.max_replicas if self.max_replicas is not None else max(self.replicas, 3)


def _is_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


def resource_name(bundle_name: str) -> str:
    """A DNS-1035 label from a bundle name (``iris_classifier`` -> ``iris-classifier``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", bundle_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"mlpack-{name}".strip("-")
    return name[:63].rstrip("-")


def manifests(bundle_name: str, bundle_version: str, options: KubernetesOptions, config_text: str | None = None) -> list[dict]:
    """The objects to apply, in apply order (ConfigMap first when there is a config)."""
    name = resource_name(bundle_name)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    labels = {
        **selector,
        "app.kubernetes.io/version": bundle_version[:63],
        "app.kubernetes.io/managed-by": "mlpack",
    }

    def meta(kind_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": kind_name, "labels": dict(labels)}
        if options.namespace:
            out["namespace"] = options.namespace
        return out

    objects: list[dict] = []
    if config_text is not None:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-config"),
                        "data": {"config.yaml": config_text}})
    objects += [
        _deployment(name, meta(name), selector, labels, options, with_config=config_text is not None),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(name),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(selector),
                "ports": [{"name": "http", "port": options.port, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta(name),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": options.replicas,
                "maxReplicas": options.hpa_max,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                           "averageUtilization": options.target_cpu_percent}},
                }],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(name),
            # maxUnavailable, not minAvailable: with one replica minAvailable=1 would block node drains
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
        },
    ]  # fmt: skip
    return objects


def _deployment(
    name: str, metadata: dict, selector: dict, labels: dict, o: KubernetesOptions, *, with_config: bool
) -> dict:
    env = [
        {"name": "PORT", "value": str(o.port)},
        {"name": "MLPACK_HOST", "value": "0.0.0.0"},
        # the root file system is read-only: everything mlpack writes goes to the /tmp volume
        {"name": "MLPACK_HOME", "value": "/tmp/mlpack"},
    ]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {}}]
    if with_config:
        env.append({"name": "MLPACK_CONFIG", "value": f"{CONFIG_DIR}/config.yaml"})
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "config", "configMap": {"name": f"{name}-config"}})

    def probe(path: str, period: int, failures: int) -> dict:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
                "timeoutSeconds": 3, "failureThreshold": failures}

    container = {
        "name": "mlpack",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        # workers follow the CPU limit (os.cpu_count() in a pod sees the whole node)
        "args": [f"--workers={o.workers}"],
        "ports": [{"name": "http", "containerPort": o.port, "protocol": "TCP"}],
        "env": env,
        # models load after the server starts: allow up to 5 minutes before liveness counts
        "startupProbe": probe("/livez", 2, 150),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/livez", 10, 3),
        "resources": {
            "requests": {"cpu": o.cpu, "memory": o.memory},
            "limits": {"cpu": o.cpu, "memory": o.memory},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        # give the endpoints controller time to take the pod out of the Service before SIGTERM
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(o.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + PRE_STOP_SECONDS + 10,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def render(objects: list[dict]) -> str:
    """Multi-document YAML, keys in a fixed order (the order the objects were built in)."""
    from .yamlio import dumps_yaml

    return "".join("---\n" + dumps_yaml(obj) for obj in objects)


__all__ = ["KubernetesOptions", "manifests", "render", "resource_name"]
