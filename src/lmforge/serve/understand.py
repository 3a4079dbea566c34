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
# Explicit citation markers, in the forms small models write them: [1], [1, 2], [1-3],
# [1][2], [Source 1], [^1], (Source 1), "source 1", "passages 1 and 2", and a bare (1)
# where it closes a clause ("costs $219 (1).") - an enumeration "(1) Remove ..." is no cite.
_NUMBERS = r"\d+(?:\s*(?:,|;|&|\band\b|-|\u2013)\s*\d+)*"
_LABEL = r"(?:sources?|passages?|refs?|references?|citations?|docs?|documents?)"
CITATION = re.compile(
    rf"\[\^?\s*(?:{_LABEL}\s*#?\s*)?(?P<bracket>{_NUMBERS})\s*(?:\u2020[^\]]*)?\]"
    rf"|\b{_LABEL}\s*#?\s*(?P<named>{_NUMBERS})\b"
    rf"|\((?P<closing>{_NUMBERS})\)(?=[ \t]*(?:[.,;:!?]|$))",
    re.IGNORECASE | re.MULTILINE,
)
# Content attribution: a number the answer states (a price, a duration, a count) or a run
# of QUOTED_WORDS consecutive words it repeats. Six words rarely recur by chance between an
# answer and a passage, and a 135M model copies whole phrases when it copies at all.
QUOTED_WORDS = 6
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for",
    "from", "has", "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "our",
    "so", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "was", "we", "what", "when", "where", "which", "who", "will", "with", "you", "your",
    "yes", "no", "not"
})  # fmt: skip


@dataclass(frozen=True)
class UnderstandingSpec:
    """The ``lmforge serve`` options for grounding, classification and sentiment."""

    kb: str | None = None
    kb_top_k: int = 3
    kb_hybrid: bool = False
    kb_verify_citations: bool = True
    classifiers: Mapping[str, str] = field(default_factory=dict)  # served name -> model ref
    sentiment: str | None = None  # a served classifier's name or a model ref
    escalate_after: int = 2
    negative_labels: tuple[str, ...] = ("negative",)


class Grounding:
    """Retrieves passages for a user turn and writes them into the system prompt."""

    def __init__(
        self, kb: KnowledgeBase, top_k: int = 3, hybrid: bool = False, verify: bool = True
    ) -> None:
        self.kb, self.top_k, self.hybrid = kb, top_k, hybrid
        self.verify_citations = verify  # repair [n] markers in whole answers (``verify``)

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

    def verify(self, answer: str, hits: Sequence[Hit]) -> tuple[str, list[dict[str, Any]]]:
        """``answer`` with its citation markers checked against the passages (see
        ``verify_citations``), and the repairs made; unchanged when verifying is off."""
        if not self.verify_citations:
            return answer, []
        return verify_citations(answer, [_searchable(hit) for hit in hits])

    def citations(self, hits: Sequence[Hit], answer: str | None = None) -> list[dict[str, Any]]:
        """The passages as the response's ``citations`` field.

        With the ``answer``, each passage also says whether the answer used it: ``cited``
        (true or false) and ``cited_by``: ``"marker"`` when the answer names its number
        ([1], [Source 1], (1), ...), ``"content"`` when it states a fact of the passage
        without a marker (see ``attribute``), else None.
        """
        how = attribute(answer, [_searchable(hit) for hit in hits]) if answer is not None else []
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
                row["cited"] = how[number - 1] is not None
                row["cited_by"] = how[number - 1]
            rows.append(row)
        return rows


def attribute(answer: str, passages: Sequence[str]) -> list[str | None]:
    """How ``answer`` draws on each of the numbered ``passages`` (passage 1 first).

    ``"marker"``: the answer cites the passage's number (see ``CITATION``).
    ``"content"``: no marker, but the answer repeats a fact of the passage:

    - a number it states (``$219``, ``45 days``; ``$``, ``.00`` and thousands commas
      aside) that the passage holds. When several passages hold the number, the words
      of the answer's sentence that states it decide: the number counts for each of those
      passages that shares at least half as many of them as the best-matching one (the
      price table and the lock's own section both name the Keystone Smart Lock and its
      $219: both count; a chime that also costs $29 does not count for "The Aura Leak
      Sensor costs $29"), and for none when the sentence shares no word with any;
    - a run of ``QUOTED_WORDS`` consecutive words of the passage, ignoring case and
      punctuation.

    None: the answer shows no sign of the passage.
    """
    how: list[str | None] = [None] * len(passages)
    for match in CITATION.finditer(answer):
        for number in _citation_numbers(match):
            if 1 <= number <= len(passages):
                how[number - 1] = "marker"
    statement = CITATION.sub(" ", answer)  # marker digits are no facts
    for index in _content_matches(statement, passages):
        how[index] = how[index] or "content"
    return how


def verify_citations(answer: str, passages: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """Point each sentence's citation marker at the passages that hold what it states.

    A small model often states the right fact and cites the wrong passage ("Overnight
    delivery is $24.99 [3]." with the price in passage 1). For each sentence with one
    marker, the passages holding its facts are found as ``attribute`` finds them (numbers,
    runs of quoted words). When no cited passage holds any of them, the marker
    is replaced by those passages. A marker a passage bears out is left as it is (even if
    other passages hold more of the sentence), and so is a sentence stating nothing
    checkable or citing several times.

    Returns:
        The answer with repaired markers, and one ``{"sentence", "was", "now"}`` per
        repair (passage numbers from 1).
    """
    repairs: list[dict[str, Any]] = []
    pieces = []
    start = 0
    for end in [m.start() for m in _SENTENCE_END.finditer(answer)] + [len(answer)]:
        sentence = answer[start:end]
        markers = list(CITATION.finditer(sentence))
        if len(markers) == 1:
            marker = markers[0]
            was = {n for n in _citation_numbers(marker) if 1 <= n <= len(passages)}
            holders = _content_matches(CITATION.sub(" ", sentence), passages)
            now = {n + 1 for n in holders}
            if now and not was & now:
                text = "[" + ", ".join(str(n) for n in sorted(now)) + "]"
                sentence = sentence[: marker.start()] + text + sentence[marker.end() :]
                repairs.append({"sentence": sentence.strip(), "was": sorted(was),
                                "now": sorted(now)})  # fmt: skip
        pieces.append(sentence)
        start = end
    return "".join(pieces), repairs


def _citation_numbers(marker: re.Match[str]) -> list[int]:
    """A ``CITATION`` match's passage numbers: ``[1, 2]``, ``passages 1 and 3``, ``[1-3]``."""
    text = marker.group("bracket") or marker.group("named") or marker.group("closing")
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|&|\band\b)\s*", text):
        first, _, last = re.sub("\u2013", "-", part).partition("-")
        start = int(first)
        end = int(last) if last.strip() else start
        numbers.extend(range(start, end + 1) if 0 <= end - start < 20 else [start, end])
    return numbers


def _content_matches(statement: str, passages: Sequence[str]) -> set[int]:
    """Indexes of the passages whose numbers or word runs ``statement`` repeats."""
    matched: set[int] = set()
    passage_numbers = [set(map(_number, _NUMBER.findall(p))) for p in passages]
    passage_words = [_WORD.findall(p.lower()) for p in passages]
    for sentence in _SENTENCE_END.split(statement):
        # The words around the number; numbers themselves would favour no passage.
        context = {w for w in _WORD.findall(sentence.lower()) if not w.isdigit()} - _STOP_WORDS
        for number in {_number(n) for n in _NUMBER.findall(sentence)}:
            holders = [i for i, held in enumerate(passage_numbers) if number in held]
            if len(holders) == 1:
                matched.update(holders)
                continue
            shared = {i: len(context & set(passage_words[i])) for i in holders}
            best = max(shared.values(), default=0)
            if best > 0:
                matched.update(i for i in holders if 2 * shared[i] >= best)
    answer_runs = _runs(_WORD.findall(statement.lower()))
    for index, words in enumerate(passage_words):
        if answer_runs & _runs(words):
            matched.add(index)
    return matched


def _number(text: str) -> str:
    """A number as the answer and the passage may both write it: 1,299.00 -> 1299."""
    whole, _, fraction = text.replace(",", "").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def _runs(words: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + QUOTED_WORDS]) for i in range(len(words) - QUOTED_WORDS + 1)}


def _searchable(hit: Hit) -> str:
    """A passage's title and text: the prompt shows both, so an answer may repeat either."""
    return f"{hit.chunk['title'] or ''}\n{hit.chunk['text']}"


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
        result.grounding = Grounding(KnowledgeBase.open(spec.kb), spec.kb_top_k, spec.kb_hybrid,
                                     verify=spec.kb_verify_citations)  # fmt: skip
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
