"""Remaining-useful-life models: a Transformer over sensor windows, and the two baselines
practitioners compare with (ridge regression on the flattened window, LightGBM on window
statistics), with one way to load any of them.

A model folder holds ``config.json`` (``model_type`` ``rul-transformer``, ``rul-ridge`` or
``rul-lightgbm``), the weights (``model.safetensors``, ``ridge.json`` or LightGBM's
``model.txt``) and the fitted ``series_processor.json`` (``lmforge.data.timeseries``). None
is pickled.

The Transformer: with time tokens, each time step's scaled readings ``(K,)`` (or, with
``patch`` P, P consecutive steps' readings, as PatchTST does: Nie et al., 2023) are
projected to a token and positions (learned, or fixed sines) are added; with sensor tokens
(iTransformer: Liu et al., 2024), each sensor's whole window ``(W,)`` is projected to a
token and a learned embedding per sensor is added, so one linear layer can read every
sensor's level and trend and attention mixes the sensors. A learned [CLS] token joins the
tokens, the pre-norm layers the FT-Transformer uses mix them, and the [CLS] state (or, with
mean pooling, the tokens' states averaged, and no [CLS]) gives two numbers: the RUL as a
fraction of the cap, and the log-odds of failure within the horizon.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.data.timeseries import SeriesProcessor
from lmforge.errors import LmforgeError
from lmforge.hub import tabular
from lmforge.hub.resolve import TIMESERIES, TIMESERIES_TYPES, ResolvedModel, resolve
from lmforge.hub.tabular import (
    BOOSTER_FILE,
    WEIGHTS_FILE,
    AddVectors,
    AppendToken,
    Encoder,
    import_lightgbm,
    keep_saved_names,
)

RUL_TRANSFORMER, RUL_RIDGE, RUL_LIGHTGBM = TIMESERIES_TYPES
RIDGE_FILE = "ridge.json"
# (inputs, *, steps) -> (attributions (N, W, K), rul (N,), failure logits (N,))
Attributor = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SeriesShape:
    """A RUL Transformer's size; saved as its ``config.json``."""

    features: int  # sensors per time step
    window: int  # time steps per window
    d_token: int = 32  # width of each token
    tokens: str = "time"  # a token per time step, or per sensor ("sensor": iTransformer);
    # "time" here because models saved before sensor tokens existed had time tokens
    layers: int = 2
    heads: int = 4
    ffn_factor: float = 2.0
    attention_dropout: float = 0.1
    ffn_dropout: float = 0.1
    positions: str = "learned"  # or "sinusoidal"
    pooling: str = "cls"  # or "mean": what the heads read
    patch: int = 1  # consecutive time steps per token (PatchTST); divides window
    rul_cap: float = 125.0  # the RUL output is a fraction of this


class RULTransformer(nn.Module):
    """Sensor window ``(B, W, K)`` -> (RUL ``(B,)`` in cycles, failure logit ``(B,)``)."""

    def __init__(self, shape: SeriesShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_token
        if shape.window % shape.patch:
            raise LmforgeError(f"task.patch: {shape.patch} does not divide the window of "
                               f"{shape.window} readings; pick a divisor")  # fmt: skip
        self.by_sensor = shape.tokens == "sensor"
        tokens = shape.features if self.by_sensor else shape.window // shape.patch
        width = shape.window if self.by_sensor else shape.features * shape.patch
        self.project = nn.Linear(width, d)
        # Each token's embedding: its sensor's, or its time step's (learned or sinusoids).
        if shape.positions == "learned" or self.by_sensor:
            self.position = AddVectors(torch.randn(tokens, d) * 0.02)
        else:
            self.position = AddVectors(sinusoids(tokens, d), trainable=False)
        if shape.pooling == "cls":
            self.cls = AppendToken(torch.empty(1, 1, d))
            nn.init.uniform_(self.cls.weight, -(d**-0.5), d**-0.5)
        keep_saved_names(self, {"position.weight": "position", "cls.weight": "cls"})
        self.encoder = Encoder(shape)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 2)  # RUL / cap, failure log-odds

    def tokens(self, inputs: torch.Tensor) -> torch.Tensor:
        """Tokens from scaled readings ``(B, W, K)``: ``(B, K, d)``, each sensor's window
        projected plus the sensor's embedding; or ``(B, W / patch, d)``, each the projection
        of ``patch`` consecutive readings plus its position."""
        if self.by_sensor:
            return self.position(self.project(inputs.transpose(1, 2)))
        batch, steps, sensors = inputs.shape
        patches = inputs.reshape(batch, steps // self.shape.patch, self.shape.patch * sensors)
        return self.position(self.project(patches))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, 2)``: RUL / cap and the failure logit, from tokens ``(B, T, d)``."""
        if self.shape.pooling == "mean":
            pooled = self.encoder(tokens).mean(1)  # (B, d)
        else:
            pooled = self.encoder(self.cls(tokens))[:, -1]  # (B, d)
        return self.head(self.norm(pooled))

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_tokens(self.tokens(inputs))
        return out[:, 0] * self.shape.rul_cap, out[:, 1]

    def save_pretrained(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_config(directory, {"model_type": RUL_TRANSFORMER, **asdict(self.shape)})
        weights = state_dict if state_dict is not None else self.state_dict()
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()},
                  directory / WEIGHTS_FILE)  # fmt: skip

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> RULTransformer:
        from safetensors.torch import load_file

        config = read_config(Path(directory))
        fields = {k: v for k, v in config.items() if k in SeriesShape.__dataclass_fields__}
        model = cls(SeriesShape(**fields))
        model.load_state_dict(load_file(Path(directory) / WEIGHTS_FILE))
        return model.eval()


def sinusoids(length: int, d: int) -> torch.Tensor:
    """``(length, d)`` fixed sine/cosine positions (Vaswani et al., 2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d // 2]
    return table


class RidgeRUL:
    """Ridge regression from the flattened window ``(W * K,)`` to the RUL."""

    def __init__(self, coef: np.ndarray, intercept: float, alpha: float) -> None:
        self.coef, self.intercept, self.alpha = coef, intercept, alpha

    @classmethod
    def fit(cls, inputs: np.ndarray, rul: np.ndarray, alpha: float) -> RidgeRUL:
        """Closed form on centred data: ``(X'X + alpha I) w = X'y``."""
        x = inputs.reshape(len(inputs), -1).astype(np.float64)
        x_mean, y_mean = x.mean(0), float(rul.mean())
        centred = x - x_mean
        gram = centred.T @ centred + alpha * np.eye(x.shape[1])
        coef = np.linalg.solve(gram, centred.T @ (rul - y_mean))
        return cls(coef, y_mean - float(x_mean @ coef), alpha)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return inputs.reshape(len(inputs), -1).astype(np.float64) @ self.coef + self.intercept

    def save_pretrained(self, directory: str | Path, state_dict: Any = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_config(directory, {"model_type": RUL_RIDGE, "alpha": self.alpha})
        (directory / RIDGE_FILE).write_text(json.dumps(
            {"coef": self.coef.tolist(), "intercept": self.intercept}) + "\n")  # fmt: skip

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> RidgeRUL:
        config = read_config(Path(directory))
        path = Path(directory) / RIDGE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(np.asarray(data["coef"], dtype=np.float64), float(data["intercept"]),
                       float(config["alpha"]))  # fmt: skip
        except (OSError, ValueError, KeyError) as err:
            raise LmforgeError(f"{path}: cannot read it ({err}); re-save the model") from None

    def parameters(self) -> list[torch.Tensor]:
        return []  # fitted in closed form, nothing for an optimizer


class LightGBMRUL:
    """LightGBM regression from window statistics (``window_statistics``) to the RUL."""

    def __init__(self, booster: Any, params: dict[str, Any]) -> None:
        self.booster, self.params = booster, params

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(window_statistics(inputs)))

    def save_pretrained(self, directory: str | Path, state_dict: Any = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_config(directory, {"model_type": RUL_LIGHTGBM, "trees": self.booster.num_trees(),
                                  **self.params})  # fmt: skip
        self.booster.save_model(str(directory / BOOSTER_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LightGBMRUL:
        lightgbm = import_lightgbm()
        config = read_config(Path(directory))
        booster = lightgbm.Booster(model_file=str(Path(directory) / BOOSTER_FILE))
        return cls(booster, {k: v for k, v in config.items() if k not in {"model_type", "trees"}})

    def parameters(self) -> list[torch.Tensor]:
        return []


def window_statistics(inputs: np.ndarray) -> np.ndarray:
    """``(M, 3K)`` per sensor: the window's mean, least-squares slope per step, last value."""
    steps = inputs.shape[1]
    t = np.arange(steps, dtype=np.float64) - (steps - 1) / 2  # centred time
    mean = inputs.mean(1)  # (M, K)
    slope = np.einsum("t,mtk->mk", t, inputs) / max(float((t**2).sum()), 1.0)
    return np.concatenate([mean, slope, inputs[:, -1]], axis=1).astype(np.float64)


def _write_config(directory: Path, config: dict[str, Any]) -> None:
    (directory / "config.json").write_text(json.dumps(config, indent=1) + "\n")


def read_config(directory: Path) -> dict[str, Any]:
    """A RUL model folder's ``config.json``, checked to be one."""
    return tabular.read_config(directory, TIMESERIES_TYPES, "RUL")


@dataclass
class SeriesModel:
    """A loaded RUL model with its processor: what evaluation and serving predict with."""

    processor: SeriesProcessor
    network: RULTransformer | None = None
    regressor: RidgeRUL | LightGBMRUL | None = None

    @property
    def kind(self) -> str:
        if self.network is not None:
            return RUL_TRANSFORMER
        return RUL_RIDGE if isinstance(self.regressor, RidgeRUL) else RUL_LIGHTGBM

    def predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(RUL (M,), failure probability (M,) or None)`` for windows ``(M, W, K)``: the
        RUL clipped to ``[0, rul_cap]``; the baselines have no failure head."""
        cap = self.processor.columns.rul_cap
        if self.network is None:
            assert self.regressor is not None
            return np.clip(self.regressor.predict(inputs), 0, cap), None
        with torch.inference_mode():
            rul, logits = self.network(torch.from_numpy(np.ascontiguousarray(inputs)))
        return (np.clip(rul.double().numpy(), 0, cap),
                torch.sigmoid(logits).double().numpy())  # fmt: skip

    def explain(
        self, inputs: np.ndarray, *, steps: int = 16, compiled: Attributor | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``predict``'s RUL and failure probability, and what each reading contributed to
        the RUL, in cycles: ``(N, W, K)`` per time step and sensor (integrated gradients
        for the Transformer, ``compiled`` passed to it; the exact linear terms for ridge),
        or ``(N, 1, K)`` per sensor for LightGBM (TreeSHAP of each sensor's mean, slope
        and last value, added up)."""
        cap = self.processor.columns.rul_cap
        if self.network is not None:
            run = compiled or partial(attributions_and_outputs, self.network)
            attributions, rul, logits = run(torch.from_numpy(np.ascontiguousarray(inputs)),
                                            steps=steps)  # fmt: skip
            return (np.clip(rul.detach().double().numpy(), 0, cap),
                    torch.sigmoid(logits.detach()).double().numpy(),
                    attributions.detach().double().numpy())  # fmt: skip
        if isinstance(self.regressor, RidgeRUL):
            terms = inputs.astype(np.float64) * self.regressor.coef.reshape(inputs.shape[1:])
            return np.clip(self.regressor.predict(inputs), 0, cap), None, terms
        assert isinstance(self.regressor, LightGBMRUL)
        shap = np.asarray(self.regressor.booster.predict(window_statistics(inputs),
                                                         pred_contrib=True))  # fmt: skip
        sensors = inputs.shape[2]
        per_sensor = shap[:, :sensors] + shap[:, sensors : 2 * sensors] + shap[:, 2 * sensors : -1]
        return np.clip(shap.sum(1), 0, cap), None, per_sensor[:, None, :]


def attributions_and_outputs(
    model: RULTransformer, inputs: torch.Tensor, *, steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrated gradients of the predicted RUL per time step and sensor: ``(attributions
    (N, W, K), RUL (N,), failure logits (N,))`` for windows ``(N, W, K)``.

    The path runs from the all-zeros window (every sensor at its training mean for its
    operating condition: the standardised origin) to the window, at ``steps`` midpoint-rule
    points; the attributions add up to RUL(window) - RUL(mean window) up to the quadrature
    error. The windows ride in the same batch as the path, so one forward and backward
    pass gives both, all in torch ops (``torch.compile`` makes it one graph)."""
    rows = len(inputs)
    alphas = (torch.arange(steps, dtype=inputs.dtype) + 0.5) / steps  # (S,)
    path = alphas[:, None, None, None] * inputs[None]  # (S, N, W, K)
    batch = torch.cat([path.reshape(-1, *inputs.shape[1:]), inputs])
    on_path = (torch.arange(len(batch)) < steps * rows).to(inputs.dtype)

    def objective(x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        rul, logits = model(x)
        return (rul * on_path).sum(), (rul, logits)

    gradients, (rul, logits) = torch.func.grad(objective, has_aux=True)(batch)
    mean_gradient = gradients[: steps * rows].reshape(steps, *inputs.shape).mean(0)
    return mean_gradient * inputs, rul[steps * rows :], logits[steps * rows :]


def compiled_attributions(model: RULTransformer) -> Attributor:
    """``attributions_and_outputs`` for ``model`` through ``torch.compile`` with inductor's
    C++ wrapper (see ``lmforge.hub.tabular.compiled_attributions``). Freezes the weights."""
    model.requires_grad_(False)
    options: dict[str, Any] = {"cpp_wrapper": True}
    return torch.compile(partial(attributions_and_outputs, model), fullgraph=True,
                         options=options)  # fmt: skip


def resolve_series(ref: str) -> ResolvedModel:
    """Resolve ``ref``, checking it names a RUL model.

    Raises:
        LmforgeError: ``ref`` is another kind of model (or names nothing).
    """
    model = resolve(ref, progress=False)
    if model.kind != TIMESERIES:
        raise LmforgeError(f"'{ref}' is a {model.kind} model, not a remaining-useful-life one; "
                           "train one with task timeseries")  # fmt: skip
    return model


def load_series_model(directory: str | Path) -> SeriesModel:
    """The RUL model saved in ``directory`` (a run's ``model/`` folder or a copy).

    Raises:
        LmforgeError: the folder is not a RUL model, or a file in it is unreadable.
    """
    directory = Path(directory)
    processor = SeriesProcessor.from_pretrained(directory)
    kind = read_config(directory)["model_type"]
    if kind == RUL_RIDGE:
        return SeriesModel(processor, regressor=RidgeRUL.from_pretrained(directory))
    if kind == RUL_LIGHTGBM:
        return SeriesModel(processor, regressor=LightGBMRUL.from_pretrained(directory))
    return SeriesModel(processor, network=RULTransformer.from_pretrained(directory))
