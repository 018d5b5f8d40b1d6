"""``mlpack build`` and ``mlpack containerize``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Optional

import typer

from .apps import new_app
from .output import info_line, parse_labels

cli = new_app()  # `mlpack` lists these from its COMMANDS table


@cli.command()
def build(
    path: Path = typer.Argument(Path("."), help="Build context: the project directory."),
    build_file: Optional[Path] = typer.Option(None, "-f", "--file", help="mlpackfile to use. [default: PATH/mlpackfile.yaml]"),
    version: Optional[str] = typer.Option(None, "--version", help="Bundle version. [default: generated]"),
    label: list[str] = typer.Option(None, "--label", help="Extra label key=value (repeatable)."),
    output: str = typer.Option("default", "-o", "--output", help="default (a summary) or tag (just the tag)."),
    wheels: Optional[bool] = typer.Option(
        None, "--wheels/--no-wheels", help="Vendor every wheel the image needs into the bundle. [default: docker.wheels]"
    ),
) -> None:
    """Build a bundle from a project and its stored models."""
    from ..build import build_bundle

    if output not in ("default", "tag"):
        raise typer.BadParameter(f"{output!r} is not one of default, tag", param_hint="-o/--output")
    with contextlib.redirect_stdout(sys.stderr):  # the service's own prints: stdout is for the tag
        bundle = build_bundle(path, build_file=build_file, version=version, labels=parse_labels(label), wheels=wheels)
    if output == "tag":
        sys.stdout.write(f"{bundle.tag}\n")
        return
    info_line(f"Built bundle {bundle.tag} at {bundle.path}")
    info_line(f"  serve it:       mlpack serve {bundle.tag}")
    info_line(f"  containerize:   mlpack containerize {bundle.tag}")
    sys.stdout.write(f"{bundle.tag}\n")


@cli.command()
def containerize(
    tag: str = typer.Argument(..., help="Bundle tag or bundle directory."),
    image: Optional[str] = typer.Option(None, "-t", "--image-tag", help="Image name. [default: the bundle's name:version]"),
    backend: Optional[str] = typer.Option(
        None,
        "--backend",
        help="docker, podman or buildah (env MLPACK_CONTAINERIZE_BACKEND). [default: the first one installed]",
    ),
    build_arg: list[str] = typer.Option(None, "--build-arg", help="Build argument key=value (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the build command instead of running it."),
    wheels: bool = typer.Option(
        True, "--wheels/--no-wheels", help="Vendor the wheels the image needs first, so its build needs no index."
    ),
) -> None:
    """Build a container image from a bundle (the bundle directory is the build context)."""
    from ..bundles import Bundle, get
    from ..containerize import containerize as build_image
    from ..settings import Settings
    from ..target import check_bundle_path

    candidate = Path(tag)
    if not (candidate / "bundle.yaml").is_file():
        check_bundle_path(tag, candidate)
    bundle = Bundle.from_path(candidate) if (candidate / "bundle.yaml").is_file() else get(tag)
    result = build_image(
        bundle.path,
        image,
        name=bundle.tag.name,
        version=bundle.tag.version,
        backend=backend,
        build_args=parse_labels(build_arg),
        dry_run=dry_run,
        stream=sys.stderr,
        wheels=wheels,
        wheel_cache=Settings.from_env().wheel_cache,
    )
    if dry_run:
        sys.stdout.write(result.command_line + "\n")
        return
    info_line(f"Built image {result.image} with {result.backend}")
    info_line(f"  run it: {result.backend if result.backend != 'buildah' else 'podman'} run --network host {result.image}")
    sys.stdout.write(f"{result.image}\n")
