"""Tabular models: the FT-Transformer, the LightGBM baseline, and one way to load either.

A tabular model folder holds ``config.json`` (``model_type`` ``ft-transformer`` or
``lightgbm``), the weights (``model.safetensors``, or LightGBM's own text format in
``model.txt``) and the fitted ``tabular_processor.json`` (``lmforge.data.tabular``). Both
load without pickle and without the code that trained them beyond this module.

FT-Transformer (Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data",
2021): every feature becomes a token (a numeric value x_j as x_j * W_j + b_j, a category
as its embedding plus b_j), a learned [CLS] token joins them, pre-norm Transformer layers
mix them, and the [CLS] state gives one logit: the log-odds of the positive class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lmforge.data.tabular import TabularProcessor
from lmforge.errors import LmforgeError
from lmforge.hub.resolve import TABULAR, TABULAR_TYPES, ResolvedModel, resolve

FT_TRANSFORMER, LIGHTGBM = TABULAR_TYPES
WEIGHTS_FILE = "model.safetensors"
BOOSTER_FILE = "model.txt"
# (numeric, codes, *, steps) -> (attributions, logits): see attributions_and_logits
Attributor = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class EncoderShape(Protocol):
    """What ``Encoder`` reads off a model's shape."""

    @property
    def d_token(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def ffn_factor(self) -> float: ...
    @property
    def attention_dropout(self) -> float: ...
    @property
    def ffn_dropout(self) -> float: ...


@dataclass(frozen=True)
class FTShape:
    """An FT-Transformer's size; saved as its ``config.json``."""

    numeric: int  # numeric features
    cardinalities: tuple[int, ...] = ()  # per categorical feature, the unseen slot included
    d_token: int = 32
    layers: int = 2
    heads: int = 4
    ffn_factor: float = 2.0
    attention_dropout: float = 0.1
    ffn_dropout: float = 0.1


class FTTransformer(nn.Module):
    """Feature tokenizer + [CLS] + Transformer encoder -> one logit per row."""

    def __init__(self, shape: FTShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_token
        features = shape.numeric + len(shape.cardinalities)
        self.numeric = ScaleTokens(torch.empty(shape.numeric, d))
        offsets = np.cumsum([0, *shape.cardinalities[:-1]]).tolist() if shape.cardinalities else []
        self.category_offsets: torch.Tensor
        self.register_buffer("category_offsets", torch.tensor(offsets, dtype=torch.long),
                             persistent=False)  # fmt: skip
        self.category_embedding = nn.Embedding(max(sum(shape.cardinalities), 1), d)
        self.feature_bias = AddVectors(torch.empty(features, d))
        self.cls = AppendToken(torch.empty(1, 1, d))
        self.encoder = Encoder(shape)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, 1))
        for part in (self.numeric, self.feature_bias, self.cls):
            nn.init.uniform_(part.weight, -(d**-0.5), d**-0.5)  # the paper's initialisation
        saved = {"numeric": "numeric_weight", "feature_bias": "feature_bias", "cls": "cls"}
        keep_saved_names(self, {f"{now}.weight": name for now, name in saved.items()})

    def tokens(self, numeric: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """Feature tokens ``(B, F, d)`` from scaled numbers ``(B, Fn)`` and codes ``(B, Fc)``."""
        parts = [self.numeric(numeric)]  # (B, Fn, d)
        if self.shape.cardinalities:
            parts.append(self.category_embedding(categories + self.category_offsets))
        return self.feature_bias(torch.cat(parts, dim=1))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` from feature tokens ``(B, F, d)``: where attributions start."""
        hidden = self.encoder(self.cls(tokens))  # (B, F + 1, d)
        return self.head(hidden[:, -1]).squeeze(-1)

    def forward(self, numeric: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(self.tokens(numeric, categories))

    def save_pretrained(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": FT_TRANSFORMER, **asdict(self.shape)}
        (directory / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        weights = state_dict if state_dict is not None else self.state_dict()
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()},
                  directory / WEIGHTS_FILE)  # fmt: skip

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FTTransformer:
        from safetensors.torch import load_file

        config = read_config(Path(directory))
        fields = {k: v for k, v in config.items() if k in FTShape.__dataclass_fields__}
        fields["cardinalities"] = tuple(fields.get("cardinalities", ()))
        model = cls(FTShape(**fields))
        model.load_state_dict(load_file(Path(directory) / WEIGHTS_FILE))
        return model.eval()


class _Attention(nn.Module):
    """Multi-head self-attention under ``nn.MultiheadAttention``'s parameter names,
    written out as matrix products: torch's fused attention kernel is 2-3x slower on a CPU
    for ~30 tokens of 4-16 dimensions per head. The query, key and value projection is an
    ``nn.Linear`` (saved as ``in_proj_weight`` and ``in_proj_bias``) so that private
    training's per-example gradients use Opacus' rule for linear layers."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        # Allocated without drawing random numbers, as torch's layer does: a seed gives the
        # same initial weights as before this was a module.
        self.in_proj = nn.Linear(d, 3 * d, device="meta").to_empty(device="cpu")
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)
        keep_saved_names(self, {"in_proj.weight": "in_proj_weight",
                                "in_proj.bias": "in_proj_bias"})  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d = x.shape
        qkv = self.in_proj(x)
        q, k, v = qkv.view(batch, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2), dim=-1)
        weights = F.dropout(weights, self.dropout, self.training)
        # Batch first, unlike nn.MultiheadAttention's (T, B, d) memory order: Opacus reads
        # the first dimension of a layer's input as the batch.
        return self.out_proj((weights @ v).transpose(1, 2).reshape(batch, length, d))


class _Layer(nn.Module):
    """A pre-norm Transformer layer: what ``nn.TransformerEncoderLayer(norm_first=True,
    activation="gelu")`` computes, with its parameter names (its dropout masks are drawn
    batch first), but with faster attention (``_Attention``): integrated gradients run
    these layers forward and backward for every explained row."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        d, hidden = shape.d_token, int(shape.d_token * shape.ffn_factor)
        self.self_attn = _Attention(d, shape.heads, shape.attention_dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.linear1, self.linear2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.dropout = nn.Dropout(shape.ffn_dropout)  # inside the feed-forward block
        self.dropout1 = nn.Dropout(shape.ffn_dropout)  # on the attention block's output
        self.dropout2 = nn.Dropout(shape.ffn_dropout)  # on the feed-forward block's output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x)))
        hidden = self.dropout(F.gelu(self.linear1(self.norm2(x))))
        return x + self.dropout2(self.linear2(hidden))


class ScaleTokens(nn.Module):
    """Numbers ``(B, F)`` -> tokens ``(B, F, d)``: feature j's value times its vector."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (F, d)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values.unsqueeze(-1) * self.weight


class AddVectors(nn.Module):
    """Tokens ``(B, T, d)`` plus one vector per token (a feature's bias, a position's or a
    sensor's embedding); a fixed table (sinusoids) is a buffer rather than a weight."""

    def __init__(self, weight: torch.Tensor, *, trainable: bool = True) -> None:
        super().__init__()
        self.weight: torch.Tensor
        if trainable:
            self.weight = nn.Parameter(weight)  # (T, d)
        else:
            self.register_buffer("weight", weight, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.weight


class AppendToken(nn.Module):
    """Tokens ``(B, T, d)`` -> ``(B, T + 1, d)``: a learned [CLS] token after the rest."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (1, 1, d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([tokens, self.weight.expand(len(tokens), -1, -1)], dim=1)


def keep_saved_names(module: nn.Module, names: dict[str, str]) -> None:
    """Save ``module``'s weights under their earlier names (``{now: saved}``) and load
    them from those names, so model files written before a weight moved into its own
    layer (one Opacus can take per-example gradients of) still load, and new ones match."""

    def save(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
        for now, saved in names.items():
            if prefix + now in state:
                state[prefix + saved] = state.pop(prefix + now)

    def load(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
        for now, saved in names.items():
            if prefix + saved in state:
                state[prefix + now] = state.pop(prefix + saved)

    module.register_state_dict_post_hook(save)
    module.register_load_state_dict_pre_hook(load)


class Encoder(nn.Module):
    """The stack of pre-norm layers, named as ``nn.TransformerEncoder`` names it
    (``layers.0...``) so models saved before these layers were written out still load."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer(shape) for _ in range(shape.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class LightGBMModel:
    """A trained LightGBM booster that saves and loads like the other models."""

    def __init__(self, booster: Any, params: dict[str, Any]) -> None:
        self.booster = booster
        self.params = params

    def save_pretrained(self, directory: str | Path, state_dict: Any = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": LIGHTGBM, "trees": self.booster.num_trees(), **self.params}
        (directory / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        self.booster.save_model(str(directory / BOOSTER_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LightGBMModel:
        lightgbm = import_lightgbm()
        config = read_config(Path(directory))
        booster = lightgbm.Booster(model_file=str(Path(directory) / BOOSTER_FILE))
        return cls(booster, {k: v for k, v in config.items() if k not in {"model_type", "trees"}})

    def parameters(self) -> list[torch.Tensor]:
        return []  # nothing for an optimizer: trees are grown, not trained by gradients


def import_lightgbm() -> Any:
    """The ``lightgbm`` module, or an error saying how to install it."""
    try:
        import lightgbm
    except ImportError:
        raise LmforgeError(
            "the LightGBM baseline needs the lightgbm package; pip install 'lightgbm>=4.5'"
        ) from None
    return lightgbm


def read_config(
    directory: Path, types: tuple[str, ...] = TABULAR_TYPES, what: str = "tabular"
) -> dict[str, Any]:
    """A model folder's ``config.json``, checked to be one of ``types`` (a ``what`` model)."""
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LmforgeError(f"{path}: cannot read it ({err}); re-save the model") from None
    if config.get("model_type") not in types:
        raise LmforgeError(
            f"{path}: model_type {config.get('model_type')!r} is not a {what} model "
            f"({', '.join(types)})"
        )
    return config


@dataclass
class TabularModel:
    """A loaded tabular model with its processor: what evaluation and serving score with."""

    processor: TabularProcessor
    network: FTTransformer | None = None
    booster: LightGBMModel | None = None

    @property
    def kind(self) -> str:
        return FT_TRANSFORMER if self.network is not None else LIGHTGBM

    def inputs(self, table: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(numeric (N, Fn) float32, codes (N, Fc) int64)`` of a table's rows."""
        return self.processor.numeric_matrix(table), self.processor.category_codes(table)

    def probabilities(self, numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``(N,)`` the positive class's probability for prepared inputs."""
        if self.booster is not None:
            return np.asarray(self.booster.booster.predict(tree_inputs(numeric, codes)))
        assert self.network is not None
        with torch.inference_mode():
            logits = self.network(torch.from_numpy(numeric), torch.from_numpy(codes))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    def explain(
        self,
        numeric: np.ndarray,
        codes: np.ndarray,
        *,
        steps: int = 16,
        compiled: Attributor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (N,), contributions (N, F))``: the positive class's probability
        and each feature's share of the row's score, in log-odds: LightGBM's own
        per-feature contributions (TreeSHAP), or integrated gradients for the
        FT-Transformer (see ``integrated_gradients``, which ``compiled`` is passed to; its
        probabilities come from the same pass)."""
        if self.booster is not None:  # the contributions and the bias add up to the logit
            shap = np.asarray(self.booster.booster.predict(tree_inputs(numeric, codes),
                                                           pred_contrib=True))  # fmt: skip
            return 1 / (1 + np.exp(-shap.sum(1))), shap[:, :-1]  # the binary objective's link
        assert self.network is not None
        attributions, logits = integrated_gradients(
            self.network, numeric, codes, steps=steps, compiled=compiled)  # fmt: skip
        return 1 / (1 + np.exp(-logits)), attributions

    def contributions(
        self, numeric: np.ndarray, codes: np.ndarray, *, steps: int = 16
    ) -> np.ndarray:
        """``(N, F)`` each feature's share of each row's score (see ``explain``)."""
        return self.explain(numeric, codes, steps=steps)[1]


def tree_inputs(numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """What LightGBM reads: ``(N, Fn + Fc)`` float64, numeric columns then category codes."""
    return np.concatenate([numeric.astype(np.float64), codes.astype(np.float64)], axis=1)


def attributions_and_logits(
    model: FTTransformer, numeric: torch.Tensor, codes: torch.Tensor, *, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients on tensors (see ``integrated_gradients``): ``(attributions
    (N, F), logits (N,))`` from scaled numbers ``(N, Fn)`` and codes ``(N, Fc)``. All of
    it in torch ops, so ``torch.compile`` makes it one graph (``compiled_attributions``)."""
    rows = len(numeric)
    tokens = model.tokens(numeric, codes).detach()  # (N, F, d)
    baseline = model.feature_bias.weight.detach().expand_as(tokens)
    alphas = (torch.arange(steps, dtype=tokens.dtype) + 0.5) / steps  # (S,)
    delta = tokens - baseline
    path = baseline[None] + alphas[:, None, None, None] * delta[None]  # (S, N, F, d)
    batch = torch.cat([path.reshape(-1, *tokens.shape[1:]), tokens])  # the rows ride last
    on_path = (torch.arange(len(batch)) < steps * rows).to(tokens.dtype)  # not the rows

    def objective(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model.forward_tokens(inputs)
        return (logits * on_path).sum(), logits

    gradients, logits = torch.func.grad(objective, has_aux=True)(batch)
    mean_gradient = gradients[: steps * rows].reshape(steps, *tokens.shape).mean(0)
    return (mean_gradient * delta).sum(-1), logits[steps * rows :]


def compiled_attributions(model: FTTransformer) -> Attributor:
    """``attributions_and_logits`` for ``model`` through ``torch.compile``: the path, the
    forward and the backward pass become one graph of fused C++ kernels behind inductor's
    C++ wrapper, which releases the GIL while it runs (one core here, 8 steps a row: a
    48-wide model 3.4 -> 1.2 ms, 32-wide 3.7 -> 1.0, 64-wide 4.8 -> 2.1). Compiles on the
    first call (10-20 s) and again for each new input shape or ``steps``, so call it with
    one shape. Freezes ``model``'s weights: only the inputs need gradients."""
    model.requires_grad_(False)
    options: dict[str, Any] = {"cpp_wrapper": True}
    return torch.compile(partial(attributions_and_logits, model), fullgraph=True, options=options)


def integrated_gradients(
    model: FTTransformer,
    numeric: np.ndarray,
    codes: np.ndarray,
    *,
    steps: int = 16,
    compiled: Attributor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of the logit per feature, and the logits themselves.

    The path runs in token space from each feature's bias token (the feature "absent":
    a numeric value of 0, the training median under quantile scaling; a category's
    embedding removed) to the row's tokens, with ``steps`` midpoint-rule points; a
    feature's attribution is the gradient . (token - baseline) summed over the token's
    width, so the attributions add up to logit(row) - logit(baseline) up to the
    quadrature error. The rows themselves ride in the same batch as the path, so one
    forward and backward pass gives both.

    Args:
        compiled: ``compiled_attributions(model)`` to run instead of the eager ops.

    Returns:
        ``(attributions (N, F), logits (N,))`` as float64.
    """
    run = compiled or partial(attributions_and_logits, model)
    attributions, logits = run(torch.from_numpy(numeric), torch.from_numpy(codes), steps=steps)
    return attributions.detach().double().numpy(), logits.detach().double().numpy()


def resolve_tabular(ref: str) -> ResolvedModel:
    """Resolve ``ref``, checking it names a tabular model.

    Raises:
        LmforgeError: ``ref`` is another kind of model (or names nothing).
    """
    model = resolve(ref, progress=False)
    if model.kind != TABULAR:
        raise LmforgeError(
            f"'{ref}' is a {model.kind} model, not a tabular one; train one with task "
            "tabular or lightgbm"
        )
    return model


def load_tabular(directory: str | Path) -> TabularModel:
    """The tabular model saved in ``directory`` (a run's ``model/`` folder or a copy).

    Raises:
        LmforgeError: the folder is not a tabular model, or a file in it is unreadable.
    """
    directory = Path(directory)
    processor = TabularProcessor.from_pretrained(directory)
    if read_config(directory)["model_type"] == LIGHTGBM:
        return TabularModel(processor, booster=LightGBMModel.from_pretrained(directory))
    return TabularModel(processor, network=FTTransformer.from_pretrained(directory))
