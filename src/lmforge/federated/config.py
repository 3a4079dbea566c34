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


class FlowerSettings(Section):
    """Where Flower's SuperLink listens and how long the run waits for sites."""

    superlink: str = Field(
        default="127.0.0.1:9092",
        pattern=r"^[^:\s]+:\d+$",
        description="HOST:PORT of the SuperLink (lmforge federated superlink --port).",
    )
    sites: int = Field(
        default=2, ge=1, description="The first round waits until this many sites are connected."
    )
    connect_timeout: float = Field(
        default=300.0, gt=0, description="Seconds to wait for those sites before failing."
    )
    round_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a round waits for the sites' updates; a site that has not "
        "answered by then drops out of the round.",
    )


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
    engine: Literal["simulation", "flower"] = Field(
        default="simulation",
        description="simulation: every site trains in this process, on its share of the "
        "data (sites); flower: sites are Flower SuperNodes, separate processes or machines "
        "that hold their own data (lmforge federated site), coordinated by a SuperLink.",
    )
    sites: SitesConfig | None = Field(
        default=None, description="simulation: the sites' data (a split or one file each)."
    )
    flower: FlowerSettings = Field(
        default_factory=FlowerSettings, description="engine flower: the SuperLink to use."
    )
    rounds: int = Field(gt=0, le=1000)
    strategy: Literal["fedavg", "fedprox"] = Field(
        default="fedavg",
        description="fedavg: average the sites' weights, weighted by their examples; "
        "fedprox: the same, each site's training pulled toward the global weights.",
    )
    proximal_mu: float = Field(
        default=0.01, gt=0, description="fedprox: the pull's strength, mu/2 * ||w - w_global||^2."
    )
    server_momentum: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="FedAvgM (Hsu et al., 2019): the server keeps the rounds' changes of the "
        "global model (each round: the sites' average minus the global weights they started "
        "from), decayed by this factor each round, and steps along their sum. 0: plain "
        "averaging.",
    )
    server_lr: float = Field(
        default=1.0,
        gt=0,
        description="How far the global model moves along that change (1 with momentum 0: "
        "the plain average).",
    )
    fraction: float = Field(
        default=1.0, gt=0, le=1, description="The share of sites asked to train each round."
    )
    min_sites: int = Field(
        default=1, ge=1, description="A round that fewer sites finish fails the run."
    )
    eval: FederatedEval | None = None
    output: FederatedOutput = Field(default_factory=FederatedOutput)

    @model_validator(mode="after")
    def _sites_for_the_engine(self) -> FederatedConfig:
        if self.engine == "simulation" and self.sites is None:
            raise ValueError("sites: the simulation needs the sites' data: sites: {count: N} "
                             "(a split of run.data.train) or sites: {files: [...]}")  # fmt: skip
        if self.engine == "flower" and self.sites is not None:
            raise ValueError("sites: with engine flower each site holds its own data (lmforge "
                             "federated site --data FILE); remove sites, set flower.sites "
                             "to how many to wait for")  # fmt: skip
        return self

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
