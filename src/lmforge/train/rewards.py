"""Reward functions for RL fine-tuning (the ``grpo`` task), registered by name.

A reward function scores a batch of completions: it is given the completions' text, the
context of the record each answers (the data row's other columns: a code problem's
``tests`` and ``entry_point``, a question's ``keywords``) and the keyword arguments of its
config entry (``task.rewards[i].params``), and returns one float per completion::

    def calm(completions: list[str], contexts: list[dict], *, limit: float = 0.1) -> list[float]:
        return [float(sum(map(str.isupper, text)) <= limit * len(text)) for text in completions]

    register_reward("calm", calm)

An installed package adds one through the ``lmforge.rewards`` entry point group. A run's
rewards are checked when it starts: each name is registered, its params bind to the
function's signature, and the function accepts an empty batch with them (so a bad regular
expression fails before the model loads).

Built in:
    code_tests  1.0 when the completion's code passes the record's ``tests`` in the evaluate
                sandbox (``lmforge.evaluate.sandbox``), else 0.0
    keywords    the share of the record's ``keywords`` the completion contains (any case)
    format      1.0 when the completion matches ``pattern`` (``re.search``; ``full: true``
                for the whole completion), else 0.0
    length      1.0 up to ``max_words`` words, falling linearly to 0.0 at twice that
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lmforge.config.plugins import installed_plugins
from lmforge.config.section import unknown_name
from lmforge.errors import LmforgeError

ENTRY_POINT_GROUP = "lmforge.rewards"
RewardFn = Callable[..., list[float]]


@dataclass(frozen=True)
class Reward:
    """A registered reward function and the record columns it reads."""

    name: str
    fn: RewardFn
    needs: tuple[str, ...] = ()  # context columns every record must have


_REGISTRY: dict[str, Reward] = {}
_plugins_loaded = False


def register_reward(name: str, fn: RewardFn, needs: Sequence[str] = ()) -> None:
    """Make ``task.rewards: [{name: NAME}]`` in a grpo run score with ``fn``.

    Args:
        name: the reward's name in run configs.
        fn: ``fn(completions, contexts, **params) -> list[float]``, one score per completion.
        needs: record columns ``fn`` reads from every context (checked when data is read).
    """
    _REGISTRY[name] = Reward(name, fn, tuple(needs))


def reward(name: str, setting: str = "task.rewards") -> Reward:
    """The registered reward ``name``.

    Raises:
        LmforgeError: no reward has that name; the message lists the registered ones.
    """
    global _plugins_loaded
    if name not in _REGISTRY and not _plugins_loaded:
        _plugins_loaded = True
        for plugin, fn in installed_plugins(ENTRY_POINT_GROUP, skip=_REGISTRY):
            register_reward(plugin, fn)
    if name not in _REGISTRY:
        raise unknown_name(setting, "reward", name, _REGISTRY)
    return _REGISTRY[name]


def checked(name: str, params: dict[str, Any], setting: str) -> Reward:
    """The reward ``name``, after checking that ``params`` suit it (see the module docs).

    Raises:
        LmforgeError: an unknown name, params the function does not take or lacks, or
            params it refuses (an invalid regular expression), named by ``setting``.
    """
    found = reward(name, f"{setting}.name")
    try:
        inspect.signature(found.fn).bind([], [], **params)
    except TypeError as error:
        raise LmforgeError(f"{setting}.params: reward {name} {error}; it takes "
                           f"{_keywords(found.fn)}") from None  # fmt: skip
    try:
        found.fn([], [], **params)
    except Exception as error:  # a user's function may raise anything
        raise LmforgeError(f"{setting}.params: reward {name} refused {params}: "
                           f"{type(error).__name__}: {error}") from None  # fmt: skip
    return found


def _keywords(fn: RewardFn) -> str:
    names = [p.name for p in list(inspect.signature(fn).parameters.values())[2:]]
    return ", ".join(names) or "no params"


# --- the built-in rewards ----------------------------------------------------------------


def code_tests(
    completions: list[str], contexts: list[dict[str, Any]], *, timeout_s: float = 10.0
) -> list[float]:
    """1.0 per completion whose code (``extract_code``) passes its record's ``tests``."""
    from lmforge.evaluate.sandbox import extract_code, run_many

    jobs = [(extract_code(text, context.get("entry_point")), str(context["tests"]))
            for text, context in zip(completions, contexts, strict=True)]  # fmt: skip
    return [float(result.passed) for result in run_many(jobs, timeout_s=timeout_s)]


def keywords(completions: list[str], contexts: list[dict[str, Any]]) -> list[float]:
    """The share of the record's ``keywords`` (a list, or a JSON list as text) the
    completion contains, case-insensitively."""
    scores = []
    for text, context in zip(completions, contexts, strict=True):
        wanted = context["keywords"]
        if isinstance(wanted, str):
            wanted = json.loads(wanted) if wanted.lstrip().startswith("[") else [wanted]
        lowered = text.lower()
        scores.append(sum(str(k).lower() in lowered for k in wanted) / max(len(wanted), 1))
    return scores


def format_match(
    completions: list[str], contexts: list[dict[str, Any]], *, pattern: str, full: bool = False
) -> list[float]:
    """1.0 per completion that ``pattern`` matches (anywhere, or whole with ``full``)."""
    compiled = re.compile(pattern, re.DOTALL)
    match = compiled.fullmatch if full else compiled.search
    return [float(match(text) is not None) for text in completions]


def length(
    completions: list[str], contexts: list[dict[str, Any]], *, max_words: int
) -> list[float]:
    """1.0 up to ``max_words`` words, then less in proportion, 0.0 from twice as many."""
    if max_words <= 0:
        raise ValueError(f"max_words must be positive, got {max_words}")
    return [max(0.0, min(1.0, 2.0 - len(text.split()) / max_words)) for text in completions]


register_reward("code_tests", code_tests, needs=("tests",))
register_reward("keywords", keywords, needs=("keywords",))
register_reward("format", format_match)
register_reward("length", length)
