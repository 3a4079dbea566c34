"""``lmforge deploy``: serving specs for where replicas run (``deploy k8s``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.generate import MODEL_HELP

app = typer.Typer(help="Write deployment specs for lmforge serve.", no_args_is_help=True)


@app.command("k8s")
def k8s(
    ref: Annotated[str | None, typer.Argument(help=MODEL_HELP + " (or model: in --config)")] = None,
    replicas: Annotated[
        int, typer.Option(min=1, help="Replicas to run (the autoscaler's floor).")
    ] = 2,
    max_replicas: Annotated[
        int | None, typer.Option(min=1, help="The autoscaler's ceiling (default: 2 x replicas).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Name of the Deployment, Service and autoscaler (default: lmforge-SERVED-NAME)."
        ),
    ] = None,
    image: Annotated[str, typer.Option(help="Container image with lmforge and the model.")] = (
        "lmforge:latest"
    ),
    namespace: Annotated[str | None, typer.Option(help="Namespace of every object.")] = None,
    cpu: Annotated[str, typer.Option(help="CPU requested per replica.")] = "2",
    memory: Annotated[str, typer.Option(help="Memory requested (and limit) per replica.")] = "4Gi",
    store_secret: Annotated[
        str, typer.Option(help="Secret whose key 'url' is the shared store's PostgreSQL URL.")
    ] = "lmforge-store",
    out: Annotated[
        Path | None, typer.Option(help="Folder for the manifests (default: ./k8s-NAME).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="A serve config YAML (lmforge serve's).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a serve setting."),
    ] = None,
) -> None:
    """Write Kubernetes manifests that serve REF on REPLICAS replicas sharing one store.

    Example: lmforge deploy k8s smollm2-135m-instruct --replicas 3 --image
    ghcr.io/acme/lmforge:0.1, then `kubectl create secret generic lmforge-store
    --from-literal=url=postgresql://...` and `kubectl apply -k k8s-lmforge-...`.
    """
    from lmforge.cli.serve import SERVE_FLAGS
    from lmforge.cli.settings import load_with_flags
    from lmforge.pipeline.k8s import K8sOptions, kubernetes_name, write_manifests
    from lmforge.serve.config import ServeConfig

    config = load_with_flags(ServeConfig, config_file, {"model": ref}, overrides or (),
                             SERVE_FLAGS)  # fmt: skip
    name = kubernetes_name(name or f"lmforge-{config.name}", "--name")
    options = K8sOptions(name, image, replicas, max_replicas, namespace, cpu, memory,
                         store_secret)  # fmt: skip
    folder = out or Path(f"k8s-{name}")
    for path in write_manifests(config, options, folder):
        typer.echo(str(path))
    typer.echo(f"apply with: kubectl apply -k {folder} (after creating the Secret "
               f"{store_secret!r} with the store's URL under key 'url')", err=True)  # fmt: skip
