"""The ``lmforge`` Typer app: one module per command group, registered here."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from lmforge.cli import agent as agent_cli
from lmforge.cli import audit as audit_cli
from lmforge.cli import compress as compress_cli
from lmforge.cli import config as config_cli
from lmforge.cli import data as data_cli
from lmforge.cli import deploy as deploy_cli
from lmforge.cli import doctor as doctor_cli
from lmforge.cli import evaluate as evaluate_cli
from lmforge.cli import explain as explain_cli
from lmforge.cli import federated as federated_cli
from lmforge.cli import generate as generate_cli
from lmforge.cli import guard as guard_cli
from lmforge.cli import images as images_cli
from lmforge.cli import kb as kb_cli
from lmforge.cli import keys as keys_cli
from lmforge.cli import models as models_cli
from lmforge.cli import pipeline as pipeline_cli
from lmforge.cli import prompts as prompts_cli
from lmforge.cli import quickstart as quickstart_cli
from lmforge.cli import registry as registry_cli
from lmforge.cli import runs as runs_cli
from lmforge.cli import serve as serve_cli
from lmforge.cli import train as train_cli
from lmforge.cli.console import err_console
from lmforge.errors import LmforgeError


class _LmforgeGroup(TyperGroup):
    """Turns an ``LmforgeError`` from any command into one message and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LmforgeError as err:
            err_console.print("[bold red]error:[/bold red]", end=" ")
            err_console.print(str(err), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=err.exit_code) from None


app = typer.Typer(
    cls=_LmforgeGroup,
    name="lmforge",
    help="Adapt, track, compress, explain and serve open Transformer models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(models_cli.app, name="models")
app.add_typer(config_cli.app, name="config")
app.add_typer(runs_cli.app, name="runs")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(deploy_cli.app, name="deploy")
app.add_typer(guard_cli.app, name="guard")
app.add_typer(kb_cli.app, name="kb")
app.add_typer(images_cli.app, name="images")
app.add_typer(data_cli.app, name="data")
app.command("embed")(kb_cli.embed)
app.add_typer(explain_cli.app, name="explain")
app.add_typer(agent_cli.app, name="agent")
app.add_typer(evaluate_cli.app, name="eval")
app.add_typer(prompts_cli.app, name="prompts")
app.add_typer(pipeline_cli.app, name="pipeline")
app.add_typer(registry_cli.app, name="registry")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(federated_cli.app, name="federated")
app.command("train")(train_cli.train)
app.command("merge")(train_cli.merge)
app.command("generate")(generate_cli.generate)
app.command("chat")(generate_cli.chat)
app.command("ui")(runs_cli.ui)
app.command("serve")(serve_cli.serve)
app.command("compress")(compress_cli.compress)
app.command("export")(compress_cli.export)
app.command("quickstart")(quickstart_cli.quickstart)
app.command("doctor")(doctor_cli.doctor)


@app.callback()
def _root() -> None:
    """lmforge: the large-model lifecycle in one CLI.

    Example: lmforge generate smollm2-135m-instruct "What is the capital of France?"
    """
    _quiet_third_party_progress()


def _quiet_third_party_progress() -> None:
    """Hide the progress bars libraries draw for work lmforge already reports.

    MLflow draws one per artifact download (``eval compare`` reads two runs'
    examples), transformers one per model load and save. MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    and HF_HUB_DISABLE_PROGRESS_BARS, when set, win.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ:
        # transformers copies huggingface_hub's setting when it is first imported (later,
        # by the command); importing transformers here would cost every command a second.
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


if __name__ == "__main__":
    app()
