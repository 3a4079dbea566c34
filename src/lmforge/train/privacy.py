"""Differentially private training (DP-SGD: Abadi et al., 2016) in the one training loop,
through Opacus.

What a private step does, and why each part is there:

- Poisson sampling: every training example joins a step's batch on its own with
  probability ``q`` (the batch size over the number of examples), so batches vary in size
  and may be empty. The privacy accounting assumes exactly this; an empty batch still takes
  a step of pure noise, counted like any other (skipping it would tell whether anyone was
  sampled).
- Per-example gradients (Opacus' hooks on the model's layers), each clipped to
  ``privacy.max_grad_norm``, summed, plus Gaussian noise of ``noise_multiplier x
  max_grad_norm``, divided by the expected batch size: Opacus' ``DPOptimizer`` around the
  loop's optimizer. An example's gradient must not depend on the other examples in its batch,
  so the loop backpropagates the batch's summed loss over its number of examples (never
  over a count of targets that other examples change).
- The accountant (PRV or RDP) turns the noise, the sampling rate and the steps taken into
  the budget spent, epsilon at the run's delta; ``privacy.target_epsilon`` picks the noise
  that spends exactly that over the run's steps.

Weights that do not train (a LoRA model's base) get no per-example gradients; ``check_frozen``
confirms after each step that none of them changed, as a guard against adapters and hooks
disagreeing about what trains (see docs/privacy.md).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import PrivacyConfig
from lmforge.errors import LmforgeError

PRIVACY_FILE = "privacy.json"  # in a model folder: the budget its training spent


def privacy_tags(model_dir: Path) -> dict[str, str]:
    """A registered version's tags for the budget its model folder records (none for a
    model trained without privacy): what a registry gate on epsilon reads."""
    path = Path(model_dir) / PRIVACY_FILE
    if not path.is_file():
        return {}
    spent = json.loads(path.read_text(encoding="utf-8"))
    return {f"lmforge.privacy.{key}": repr(float(spent[key])) for key in ("epsilon", "delta")}


def composed_epsilon(spent: list[dict[str, float]], delta: float, accountant: str) -> float:
    """The budget of several private trainings of the same data (one site's training in
    each federated round), composed by the accountant: epsilon at ``delta`` over all of
    their steps. Each entry is a run's ``report()``."""
    from opacus.accountants import create_accountant

    counter = create_accountant(accountant)
    counter.history = [(run["noise_multiplier"], run["sample_rate"], int(run["steps"]))
                       for run in spent]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP: "optimal order is the largest alpha"
        return float(counter.get_epsilon(delta))


def default_delta(examples: int) -> float:
    """1 / N rounded down to a power of ten: 8,000 examples give 1e-4."""
    return 10.0 ** math.floor(math.log10(1.0 / max(examples, 1)))


def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with the layers Opacus cannot take per-example gradients of replaced by
    ones it can (BatchNorm by GroupNorm, ``nn.MultiheadAttention`` by Opacus' own), checked.

    Raises:
        LmforgeError: a layer Opacus cannot handle even so, named: one its validator
            rejects, or one that holds trainable weights of its own beside buffers (Opacus
            has no per-example rule for it).
    """
    from opacus.validators import ModuleValidator
    from opacus.validators.errors import UnsupportedModuleError

    if ModuleValidator.validate(model, strict=False):
        model = ModuleValidator.fix(model)  # a copy: build the optimizer after this
    mixed = [name or type(module).__name__ for name, module in model.named_modules()
             if any(p.requires_grad for p in module.parameters(recurse=False))
             and any(True for _ in module.buffers(recurse=False))]  # fmt: skip
    if mixed:
        raise LmforgeError(f"privacy: Opacus cannot take per-example gradients of "
                           f"{', '.join(mixed)} (trainable weights of its own beside buffers); "
                           "this model is not built for private training yet, train it "
                           "without privacy")  # fmt: skip
    try:
        ModuleValidator.validate(model, strict=True)
    except UnsupportedModuleError as error:
        problems = "; ".join(str(problem) for problem in error.args[0])
        raise LmforgeError(f"privacy: Opacus cannot train this model privately ({problems}); "
                           "use a model without those layers, or train without "
                           "privacy") from None  # fmt: skip
    return model


@dataclass
class PrivateTraining:
    """The private parts of a run: hooks on the model, the noisy optimizer, the accountant.

    Build it with ``attach`` once the model and its optimizer exist; the loop then steps
    ``optimizer`` (not the plain one) and draws each step's batch with ``sample``.
    """

    settings: PrivacyConfig
    hooks: Any  # Opacus' GradSampleHooks on the model
    optimizer: Any  # Opacus' DPOptimizer around the loop's optimizer
    accountant: Any
    sample_rate: float
    noise_multiplier: float
    delta: float
    examples: int
    frozen: list[tuple[str, torch.nn.Parameter, int]]  # (name, weight, its version counter)
    trained: list[tuple[str, torch.nn.Parameter]]
    handles: list[Any]  # the hooks of ``share_embedding_inputs``

    @classmethod
    def attach(
        cls,
        settings: PrivacyConfig,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        examples: int,
        batch_size: int,
        steps: int,
    ) -> PrivateTraining:
        """Hooks on ``model`` (already through ``prepare_model``) and a DP optimizer around
        ``optimizer``, with the noise that ``settings`` asks for over ``steps`` steps of
        Poisson batches of ``batch_size`` expected examples out of ``examples``.

        Raises:
            LmforgeError: the budget cannot be met (too many steps for the target epsilon).
        """
        from opacus.accountants import create_accountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.grad_sample import GradSampleHooks
        from opacus.optimizers import DPOptimizer

        # Fired by the first hooked layer of a frozen stack on every backward: harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")
        sample_rate = min(1.0, batch_size / examples)
        delta = settings.delta if settings.delta is not None else default_delta(examples)
        if settings.noise_multiplier is not None:
            noise = settings.noise_multiplier
        else:
            assert settings.target_epsilon is not None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # as in epsilon()
                    noise = get_noise_multiplier(
                        target_epsilon=settings.target_epsilon, target_delta=delta,
                        sample_rate=sample_rate, steps=steps, accountant=settings.accountant,
                    )  # fmt: skip
            except ValueError as error:
                raise LmforgeError(f"privacy.target_epsilon: {settings.target_epsilon} cannot "
                                   f"be met over {steps} steps at delta {delta:g} ({error}); "
                                   "raise it, or train fewer steps") from None  # fmt: skip
        frozen = [(name, p, p._version) for name, p in model.named_parameters()
                  if not p.requires_grad]  # fmt: skip
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "secure RNG turned off": documented below
            # "sum": the loop backpropagates each pass's summed loss, so the hooks' per-example
            # gradients need no rescaling by the pass's size (a step may take several passes)
            hooks = GradSampleHooks(model, batch_first=True, loss_reduction="sum", strict=True)
            private = DPOptimizer(optimizer, noise_multiplier=noise,
                                  max_grad_norm=settings.max_grad_norm,
                                  expected_batch_size=max(1, round(sample_rate * examples)),
                                  loss_reduction="mean")  # fmt: skip
        accountant = create_accountant(settings.accountant)
        private.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        return cls(settings, hooks, private, accountant, sample_rate, noise, delta, examples,
                   frozen, trained, share_embedding_inputs(model))  # fmt: skip

    def sample(self, generator: torch.Generator) -> list[int]:
        """One step's batch: each example's index with probability ``sample_rate``."""
        drawn = torch.rand(self.examples, generator=generator) < self.sample_rate
        return drawn.nonzero().flatten().tolist()

    def empty_step(self) -> None:
        """A step for an empty batch: no gradient, only the noise, accounted as usual."""
        for p in self.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        self.optimizer.step()

    @property
    def steps(self) -> int:
        """Private steps taken so far (the accountant's history is (noise, rate, steps))."""
        return sum(entry[2] for entry in self.accountant.history)

    def epsilon(self) -> float:
        """The budget spent so far: epsilon at ``delta`` (0 before the first step)."""
        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # RDP: "optimal order is the largest alpha"
            return float(self.accountant.get_epsilon(self.delta))

    def check_gradients(self, examples: int) -> None:
        """Raise unless every weight that trains has its per-example gradients for all
        ``examples``; a weight this batch did not use (a table's category embedding when it
        has no categories) gets gradients of zero. A step's several passes are joined into
        one batch: Opacus would take each pass for a batch of its own and divide the sum by
        the expected batch size once per pass.

        Raises:
            LmforgeError: a weight whose layer ran outside Opacus' hooks, named.
        """
        for name, weight in self.trained:
            passes = getattr(weight, "grad_sample", None)
            if isinstance(passes, list):
                joined = torch.cat(passes)
                if len(joined) != examples:
                    raise LmforgeError(
                        f"privacy: {name} has per-example gradients for {len(joined)} of the "
                        f"step's {examples} examples: one of its passes did not use it; set "
                        "train.group_by_length: false (one pass a step)"
                    )
                weight.grad_sample = joined  # type: ignore[attr-defined]  # Opacus' attribute
            if weight.grad is None and getattr(weight, "grad_sample", None) is None:
                zeros = weight.new_zeros((examples, *weight.shape))
                weight.grad_sample = zeros  # type: ignore[attr-defined]  # Opacus' attribute
            elif getattr(weight, "grad_sample", None) is None:
                raise LmforgeError(f"privacy: no per-example gradient for {name}: its layer "
                                   "ran outside Opacus' hooks, so its gradient cannot be "
                                   "clipped per example; train it without privacy or freeze "
                                   "it")  # fmt: skip

    def check_frozen(self) -> None:
        """Raise if a weight that should not train was written to since ``attach``.

        Raises:
            LmforgeError: the weight, named.
        """
        for name, weight, version in self.frozen:
            if weight._version != version:
                raise LmforgeError(f"privacy: the frozen weight {name} changed during a private "
                                   "step; the adapters and Opacus disagree about what trains. "
                                   "Report this with the config")  # fmt: skip

    def report(self) -> dict[str, float]:
        """What the run spent, for metrics, the model folder and its card."""
        return {"epsilon": self.epsilon(), "delta": self.delta,
                "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.settings.max_grad_norm, "sample_rate": self.sample_rate,
                "steps": float(self.steps), "poisson": float(self.settings.poisson)}  # fmt: skip

    def detach(self) -> None:
        """Take the hooks off the model (before it is saved)."""
        self.hooks.cleanup()
        for handle in self.handles:
            handle.remove()


def share_embedding_inputs(model: torch.nn.Module) -> list[Any]:
    """Hooks that give every trainable embedding the batch's size: Hugging Face encoders
    look positions up once for the whole batch (ids of shape ``(1, T)``), which would give
    their position embeddings one gradient for the batch instead of one per example. The
    ids are expanded to ``(B, T)``, which changes no output (the lookup was broadcast)."""
    batch = [0]

    def remember(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        first = next((v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)), None)
        batch[0] = len(first) if first is not None and first.dim() > 0 else 0

    def expand(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        ids = args[0]
        if batch[0] > 1 and ids.dim() > 1 and len(ids) == 1:
            return (ids.expand(batch[0], *ids.shape[1:]), *args[1:])
        return None

    handles = [model.register_forward_pre_hook(remember, with_kwargs=True)]
    embeddings = [m for m in model.modules()
                  if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad]  # fmt: skip
    handles += [module.register_forward_pre_hook(expand) for module in embeddings]
    return handles
