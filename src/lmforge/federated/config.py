"""The federated config: which training every site runs, how the sites' data is split (or
which file each site holds), how many rounds, and how updates are averaged.

```yaml
name: sentiment-sites
run: ../train/classify_sentiment.yaml   # what each site trains each round
sites: {count: 10, dirichlet: 0.5}      # non-IID: each label spread over sites by Dir(0.5)
rounds: 20
strategy: fedavg                        # or fedprox (with proximal_mu)
eval: {data: ../../src/lmforge/assets/datasets/sentiment/test.jsonl, task: classification}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from lmforge.config.section import Section


class SitesConfig(Section):
    """The sites and their data: a split of the run's training data, or a file per site."""

    count: int | None = Field(
        default=None, ge=2, le=1000, description="Split run.data.train among this many sites."
    )
    dirichlet: float | None = Field(
        default=None,
        gt=0,
        description="Non-IID split: each label's records go to the sites in shares drawn "
        "from a Dirichlet of this concentration (0.5: most sites hold few labels; large: "
        "close to even). null: an even random split.",
    )
    files: list[Path] | None = Field(
        default=None, min_length=2, description="One training file per site instead."
    )
    seed: int = Field(default=0, description="Draws the split.")

    @model_validator(mode="after")
    def _one_source(self) -> SitesConfig:
        if (self.count is None) == (self.files is None):
            raise ValueError("sites: give count (split run.data.train) or files (one per "
                             "site), not both")  # fmt: skip
        if self.files is not None and self.dirichlet is not None:
            raise ValueError("sites.dirichlet: splits run.data.train; with sites.files each "
                             "site already holds its own data; remove it")  # fmt: skip
        return self


class FederatedEval(Section):
    """Scores the global model after rounds (``lmforge eval`` on held-out data)."""

    data: Path = Field(
        description="Held-out data: a JSON Lines file (relative to this file) or a bundled "
        "split (bundled:NAME/SPLIT)."
    )
    task: str = Field(description="The evaluation task, e.g. classification.")
    every: int = Field(default=1, gt=0, description="Score after every N-th round (and the last).")


class FederatedOutput(Section):
    dir: Path | None = Field(
        default=None, description="Where the run goes; null: a new run folder under runs/."
    )
    experiment: str = Field(default="federated", description="The MLflow experiment.")
    register_as: str | None = Field(
        default=None, description="Register the final global model under this name."
    )


class FederatedConfig(Section):
    """A federated training job (docs/privacy.md, "Federated learning")."""

    config_name: ClassVar[str] = "federated config"
    schema_kind: ClassVar[str] = "federated"
    example: ClassVar[str] = "examples/federated/sentiment_sites.yaml"

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    run: Path = Field(
        description="The run config every site trains with each round (its train section "
        "is one round of local training); data.train is what sites.count splits."
    )
    sites: SitesConfig
    rounds: int = Field(gt=0, le=1000)
    strategy: Literal["fedavg", "fedprox"] = Field(
        default="fedavg",
        description="fedavg: average the sites' weights, weighted by their examples; "
        "fedprox: the same, each site's training pulled toward the global weights.",
    )
    proximal_mu: float = Field(
        default=0.01, gt=0, description="fedprox: the pull's strength, mu/2 * ||w - w_global||^2."
    )
    fraction: float = Field(
        default=1.0, gt=0, le=1, description="The share of sites asked to train each round."
    )
    min_sites: int = Field(
        default=1, ge=1, description="A round that fewer sites finish fails the run."
    )
    eval: FederatedEval | None = None
    output: FederatedOutput = Field(default_factory=FederatedOutput)

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
