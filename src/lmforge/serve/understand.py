"""What a support assistant knows about a conversation beyond the words: the company
passages that answer it (grounding, ``--kb``), how the customer feels (``--sentiment``),
and the classifiers served on ``/v1/classify`` and ``/v1/explain``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.hub.classifier import TextClassifier
from lmforge.retrieve.kb import Hit, KnowledgeBase

GROUNDING_INSTRUCTIONS = (
    "Answer using the numbered passages from the company's documents below. Cite each "
    "passage you use with its number in square brackets, like [1]. If the passages do not "
    "answer the question, say you are not sure and offer to connect the customer with "
    "support."
)
CITATION = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class UnderstandingSpec:
    """The ``lmforge serve`` options for grounding, classification and sentiment."""

    kb: str | None = None
    kb_top_k: int = 3
    kb_hybrid: bool = False
    classifiers: Mapping[str, str] = field(default_factory=dict)  # served name -> model ref
    sentiment: str | None = None  # a served classifier's name or a model ref
    escalate_after: int = 2
    negative_labels: tuple[str, ...] = ("negative",)


class Grounding:
    """Retrieves passages for a user turn and writes them into the system prompt."""

    def __init__(self, kb: KnowledgeBase, top_k: int = 3, hybrid: bool = False) -> None:
        self.kb, self.top_k, self.hybrid = kb, top_k, hybrid

    def retrieve(self, question: str) -> list[Hit]:
        return self.kb.search(question, self.top_k, hybrid=self.hybrid)

    @staticmethod
    def system_prompt(base: str | None, hits: Sequence[Hit]) -> str:
        """``base`` (the conversation's own system prompt) followed by the passages."""
        passages = "\n\n".join(
            f"[{i}] ({hit.chunk['name']}, {hit.chunk['title'] or 'untitled'})\n"
            f"{_plain(hit.chunk['text'])}"
            for i, hit in enumerate(hits, start=1)
        )
        head = f"{base.strip()}\n\n" if base and base.strip() else ""
        return f"{head}{GROUNDING_INSTRUCTIONS}\n\n{passages}"

    @staticmethod
    def with_passages(messages: list[dict[str, str]], hits: Sequence[Hit]) -> list[dict[str, str]]:
        """The messages with the passages merged into (or added as) the system message."""
        if messages and messages[0]["role"] == "system":
            system = Grounding.system_prompt(messages[0]["content"], hits)
            return [{"role": "system", "content": system}, *messages[1:]]
        return [{"role": "system", "content": Grounding.system_prompt(None, hits)}, *messages]

    def citations(self, hits: Sequence[Hit], answer: str | None = None) -> list[dict[str, Any]]:
        """The passages as the response's ``citations`` field; with the ``answer``, each
        says whether the answer cited it by number."""
        cited = {int(n) for n in CITATION.findall(answer or "")}
        rows = []
        for number, hit in enumerate(hits, start=1):
            row = {
                "index": number,
                "kb": self.kb.name,
                "id": hit.chunk["id"],
                "source": hit.chunk["name"],
                "title": hit.chunk["title"],
                "text": hit.chunk["text"],
                "score": round(hit.score, 4),
            }
            if answer is not None:
                row["cited"] = number in cited
            rows.append(row)
        return rows


class SentimentMonitor:
    """Scores user turns with a classifier and raises ``escalate`` after
    ``escalate_after`` negative turns in a row."""

    def __init__(
        self, classifier: TextClassifier, name: str, escalate_after: int = 2,
        negative_labels: Sequence[str] = ("negative",),
    ) -> None:  # fmt: skip
        unknown = sorted(set(negative_labels) - set(classifier.labels))
        if unknown:
            raise LmforgeError(
                f"--negative-labels {','.join(negative_labels)}: the sentiment model "
                f"'{name}' has no label {unknown} (its labels: {', '.join(classifier.labels)})."
            )
        if escalate_after < 1:
            raise LmforgeError(f"--escalate-after {escalate_after}: must be at least 1.")
        self.classifier, self.name = classifier, name
        self.escalate_after = escalate_after
        self.negative_labels = set(negative_labels)

    @property
    def rule(self) -> str:
        labels = " or ".join(sorted(self.negative_labels))
        return f"{self.escalate_after} {labels} user turns in a row"

    def score(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"label", "score", "negative"}`` for each text."""
        scored = []
        for probabilities in self.classifier.classify(texts):
            label, score = next(iter(probabilities.items()))  # most likely first
            scored.append({"label": label, "score": round(score, 4),
                           "negative": label in self.negative_labels})  # fmt: skip
        return scored

    def escalate(self, trend: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the last ``escalate_after`` turns of ``trend`` were all negative."""
        recent = trend[-self.escalate_after :]
        return len(recent) == self.escalate_after and all(t["negative"] for t in recent)


@dataclass
class Understanding:
    """What ``UnderstandingSpec`` loads: each part None (or empty) when not asked for."""

    grounding: Grounding | None = None
    classifiers: dict[str, TextClassifier] = field(default_factory=dict)
    sentiment: SentimentMonitor | None = None


def load_understanding(spec: UnderstandingSpec) -> Understanding:
    """Open the knowledge base and load the classifiers a server was asked to serve.

    Raises:
        LmforgeError: the knowledge base does not exist, a classifier reference does not
            resolve to a classifier, or a negative label is not one of its labels.
    """
    result = Understanding()
    if spec.kb is not None:
        result.grounding = Grounding(KnowledgeBase.open(spec.kb), spec.kb_top_k, spec.kb_hybrid)
    for name, ref in spec.classifiers.items():
        result.classifiers[name] = TextClassifier(ref)
    if spec.sentiment is not None:
        name = spec.sentiment
        if name not in result.classifiers:
            result.classifiers[name] = TextClassifier(name)
        result.sentiment = SentimentMonitor(
            result.classifiers[name], name, spec.escalate_after, spec.negative_labels
        )
    return result


def _plain(text: str) -> str:
    """A passage as one paragraph: Markdown heading marks and line wraps removed."""
    return " ".join(line.lstrip("#").strip() for line in text.splitlines() if line.strip())
