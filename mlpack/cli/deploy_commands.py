"""``mlpack deploy kubernetes``: manifests for serving a bundle's image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .apps import new_app

cli = new_app()
deploy_app = new_app()
cli.add_typer(deploy_app, name="deploy", help="Write deployment manifests for a bundle.")


@deploy_app.command("kubernetes")
def kubernetes(
    tag: str = typer.Argument(..., help="Bundle tag or bundle directory."),
    image: str = typer.Option(..., "--image", help="The image `mlpack containerize` built, as the cluster pulls it."),
    output: str = typer.Option("-", "-o", "--output", help="File to write, or - for stdout."),
    replicas: int = typer.Option(1, "--replicas", help="Replicas, and the autoscaler's minimum."),
    max_replicas: Optional[int] = typer.Option(None, "--max-replicas", help="Autoscaler maximum. [default: max(replicas, 3)]"),
    cpu: str = typer.Option("500m", "--cpu", help="CPU request and limit per pod."),
    memory: str = typer.Option("1Gi", "--memory", help="Memory request and limit per pod."),
    port: int = typer.Option(3000, "--port", help="Port the server listens on and the Service exposes."),
    namespace: Optional[str] = typer.Option(None, "--namespace", help="Namespace of every object. [default: none set]"),
    config: Optional[Path] = typer.Option(None, "--config", help="mlpack config file to ship as a ConfigMap."),
) -> None:
    """Write a Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget (YAML)."""
    from ..bundles import Bundle, get
    from ..config import read_config_file
    from ..exceptions import ConfigError
    from ..fsutil import atomic_output
    from ..kubernetes import KubernetesOptions, manifests, render

    candidate = Path(tag)
    bundle = Bundle.from_path(candidate) if (candidate / "bundle.yaml").is_file() else get(tag)
    config_text = None
    if config is not None:
        read_config_file(config)  # refuse a config the server would refuse
        try:
            config_text = config.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config}: {exc.strerror}") from exc
    options = KubernetesOptions(
        image=image, replicas=replicas, max_replicas=max_replicas, cpu=cpu, memory=memory, port=port, namespace=namespace
    )
    text = render(manifests(bundle.tag.name, str(bundle.tag.version), options, config_text))
    if output == "-":
        sys.stdout.write(text)
        return
    dest = Path(output)
    with atomic_output(dest, binary=False) as out:  # honours the umask; one error line if it fails
        out.write(text)
    sys.stderr.write(f"wrote {dest}: kubectl apply -f {dest}\n")
