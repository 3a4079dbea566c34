#!/usr/bin/env python3
"""Write the grounded support dialogs (customer_service/grounded_{train,validation}.jsonl).

Each record is one question of a bundled support dialog asked the way ``lmforge serve
--kb`` asks it: the system message is exactly what the server builds,
``Grounding.system_prompt(<the dialogs' system prompt>, hits)``, with passages of a real
knowledge base over ``company/*.md`` built with the quickstart's ``kb`` step settings
(all-MiniLM-L6-v2, 128-token passages, 32 overlapping). The assistant answers with the
dialog's own answer and cites the passage that holds its fact with the marker the
server's citation code reads (``[2]``). Three kinds of examples:

- ``retrieved``: the passages the server retrieves for the question (top 3), so the
  right one lands 1st, 2nd or 3rd as retrieval puts it;
- ``distractors``: the right passage at a seeded rank (1, 2 or 3) between the two
  passages most similar to the question that carry a *neighbouring* number (another
  duration in days, another price, another warranty length) and not the answer's;
- ``unanswerable``: the top passages with every passage holding the answer's fact taken
  out, or a sample of the questions whose served passages miss it; the assistant says it is not
  sure and points to the support contacts.

Questions come only from the user turns of ``customer_service/train.jsonl`` (train) and
``validation.jsonl`` (validation), never from ``test.jsonl``, ``test_questions.jsonl`` or
``challenge_questions.jsonl``. A turn is used when it stands alone (no "it", "that", ...
pointing back into the dialog) and its answer states a fact one passage holds: a price, a
duration, a percentage, a count, a contact, or a run of six words of the passage.

    python scripts/make_grounded_dialogs.py               # rewrite the committed files
    python scripts/make_grounded_dialogs.py --out /tmp/g  # write them elsewhere

Seeded; the knowledge base is built in a temporary ``LMFORGE_HOME``, so every run writes
byte-identical files and touches no user state.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DATASETS = ROOT / "src" / "lmforge" / "assets" / "datasets"
DEFAULT_OUT = DATASETS / "customer_service"
SEED = 1729
# The quickstart's kb step (examples/pipelines/quickstart.yaml, KbParams defaults).
KB_NAME = "brightnest"
EMBED = "all-minilm-l6-v2"
CHUNK_TOKENS, OVERLAP = 128, 32
TOP_K = 3  # UnderstandingSpec.kb_top_k, what `lmforge serve --kb` retrieves
# Dense retrieval often ranks a product's own passages above the policy a question about
# that product needs, so about a third of the questions' served passages miss the fact.
# Sampled so that about one record in eight says "not sure": MISSED_SHARE of those
# misses, plus UNANSWERABLE_SHARE of the other questions asked again with the passages
# that hold the fact taken out.
MISSED_SHARE = 0.35
UNANSWERABLE_SHARE = 0.08
# A fact the answer states: a price, a duration, a share, a count, a contact.
FACT = re.compile(
    r"\$\d[\d,]*(?:\.\d+)?"
    r"|\b\d[\d,]*(?:\.\d+)?%"
    r"|\b\d[\d,]*\s+(?:business\s+days?|days?|years?|months?|hours?|minutes?|seconds?"
    r"|points|digits|AA)\b"
    r"|\b\d{1,2}\s+[ap]\.m\."
    r"|\b1-800-\d{3}-\d{4}\b"
    r"|\b[\w.-]+@brightnesthome\.com\b",
    re.IGNORECASE,
)
# Words that point back into the dialog; a turn with one does not stand alone.
POINTS_BACK = re.compile(r"\b(it|its|it's|that|this|them|they|those|these|one)\b", re.I)
UNSURE = (
    "I'm not sure: the passages I have don't answer that. Our support team can help at "
    "support@brightnesthome.com or 1-800-555-0142 (Monday to Friday, 8 a.m. to 8 p.m. "
    "Eastern Time).",
    "I'm not sure, and I'd rather not guess: the documents I found don't cover it. Please "
    "contact support at support@brightnesthome.com or 1-800-555-0142.",
    "The passages I have don't say, so I'm not sure. I can connect you with our support "
    "team: email support@brightnesthome.com or call 1-800-555-0142.",
)


def fact_kind(fact: str) -> str:
    """What a fact measures, so a distractor can carry another value of the same kind."""
    lowered = fact.lower()
    if lowered.startswith("$"):
        return "price"
    if "@" in lowered or lowered.startswith("1-800"):
        return "contact"
    for unit in ("business day", "day", "year", "month", "hour", "minute", "second", "%",
                 "point", "digit", "aa", "m."):  # fmt: skip
        if unit in lowered:
            return {"year": "warranty", "month": "warranty"}.get(unit, unit)
    return "other"


def collapse(text: str) -> str:
    return " ".join(text.lower().split())


def build_kb() -> Any:
    """The quickstart's knowledge base over company/*.md, in the current LMFORGE_HOME."""
    from lmforge.retrieve.kb import KnowledgeBase

    kb = KnowledgeBase.create(KB_NAME, embed_ref=EMBED, chunk_tokens=CHUNK_TOKENS,
                              overlap=OVERLAP, replace=True)  # fmt: skip
    kb.add([DATASETS / "company"])
    return kb


def turns(path: Path) -> list[tuple[str, str, str]]:
    """(system prompt, user turn, assistant answer) for every standalone user turn."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        system = messages[0]["content"]
        for index, message in enumerate(messages[:-1]):
            if message["role"] != "user" or messages[index + 1]["role"] != "assistant":
                continue
            if index > 1 and POINTS_BACK.search(message["content"]):
                continue
            found.append((system, message["content"], messages[index + 1]["content"]))
    return found


class Grounder:
    """Finds an answer's facts and the passages that hold them, and picks distractors."""

    def __init__(self, kb: Any) -> None:
        from lmforge.serve.understand import attribute

        self.kb, self.attribute = kb, attribute
        self.texts = [collapse(f"{c['title'] or ''} {c['text']}") for c in kb.chunks]
        self.facts = [
            {collapse(f) for f in FACT.findall(f"{c['title'] or ''} {c['text']}")}
            for c in kb.chunks
        ]

    def support(self, answer: str) -> tuple[list[str], set[int]]:
        """The answer's facts that some passage holds, and the passages holding all of
        them (by content attribution when the answer states no such fact)."""
        facts = sorted({collapse(f) for f in FACT.findall(answer)})
        facts = [f for f in facts if any(f in text for text in self.texts)]
        if facts:
            return facts, {i for i, text in enumerate(self.texts) if all(f in text for f in facts)}
        searchable = [f"{c['title'] or ''}\n{c['text']}" for c in self.kb.chunks]
        how = self.attribute(answer, searchable)
        held = {i for i, cited in enumerate(how) if cited == "content"}
        return [], held if len(held) <= TOP_K else set()

    def ranked(self, question: str) -> list[tuple[int, float]]:
        """Every passage's index and cosine similarity to ``question``, nearest first."""
        import numpy as np

        vector = self.kb.embedder().encode([question])[0]  # (D,)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        scores = self.kb.vectors @ vector  # (N,)
        order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
        return [(i, float(scores[i])) for i in order]

    def distractors(
        self, facts: Sequence[str], held: set[int], ranked: list[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        """Passages nearest the question that carry another value of a fact's kind."""
        kinds = {fact_kind(f) for f in facts} - {"other"}
        chosen = []
        for index, score in ranked:
            if index in held or any(f in self.texts[index] for f in facts):
                continue
            if any(fact_kind(f) in kinds for f in self.facts[index]):
                chosen.append((index, score))
        return chosen


def hits_of(kb: Any, picked: Sequence[tuple[int, float]]) -> list[Any]:
    from lmforge.retrieve.kb import Hit

    return [Hit(rank, score, kb.chunks[i]) for rank, (i, score) in enumerate(picked, start=1)]


def cite(answer: str, number: int) -> str:
    """The answer with ``[number]`` before its final punctuation (after its first sentence
    when that one states the fact)."""
    answer = answer.strip()
    end = answer[-1] if answer[-1] in ".!?" else ""
    return f"{answer[: len(answer) - len(end)]} [{number}]{end or '.'}"


def record(system: str, hits: Sequence[Any], question: str, answer: str,
           kind: str, facts: Sequence[str], cited: int | None) -> dict[str, Any]:  # fmt: skip
    from lmforge.serve.understand import Grounding

    return {
        "messages": [
            {"role": "system", "content": Grounding.system_prompt(system, hits)},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "topic": "grounded",
        "kind": kind,
        # What a right answer contains: the facts, or "not sure" when the passages miss them.
        "keywords": list(facts) if cited is not None else ["not sure"],
        "cited": cited,  # the passage number holding the fact; None: the passages miss it
        "sources": [hit.chunk["id"] for hit in hits],
    }


def make_split(grounder: Grounder, path: Path, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    seen: set[str] = set()
    for system, question, answer in turns(path):
        if question in seen:
            continue
        facts, held = grounder.support(answer)
        if not held:
            continue  # chit-chat, or a fact no single passage holds
        seen.add(question)
        ranked = grounder.ranked(question)
        served = ranked[:TOP_K]
        right = [n for n, (i, _) in enumerate(served, start=1) if i in held]
        if right:
            answered = cite(answer, right[0])
            records.append(record(system, hits_of(grounder.kb, served), question, answered,
                                  "retrieved", facts, right[0]))  # fmt: skip
        elif rng.random() < MISSED_SHARE:  # the served passages miss the fact: say so
            records.append(record(system, hits_of(grounder.kb, served), question,
                                  rng.choice(UNSURE), "unanswerable", facts, None))  # fmt: skip
        others = grounder.distractors(facts, held, ranked)
        if facts and len(others) >= TOP_K - 1:
            best = next(pair for pair in ranked if pair[0] in held)
            rank = rng.randint(1, TOP_K)
            picked = others[: TOP_K - 1]
            picked.insert(rank - 1, best)
            records.append(record(system, hits_of(grounder.kb, picked), question,
                                  cite(answer, rank), "distractors", facts, rank))  # fmt: skip
        if right and rng.random() < UNANSWERABLE_SHARE:
            missing = [pair for pair in ranked
                       if pair[0] not in held and not any(f in grounder.texts[pair[0]]
                                                          for f in facts)][:TOP_K]  # fmt: skip
            records.append(record(system, hits_of(grounder.kb, missing), question,
                                  rng.choice(UNSURE), "unanswerable", facts, None))  # fmt: skip
    rng.shuffle(records)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Folder to write to.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lmforge-grounded-") as home:
        os.environ["LMFORGE_HOME"] = home
        grounder = Grounder(build_kb())
        for split, source in (("train", "train"), ("validation", "validation")):
            rows = make_split(grounder, DEFAULT_OUT / f"{source}.jsonl", random.Random(SEED))
            if split == "validation":  # scored by keywords, so each record needs some
                rows = [r for r in rows if r["keywords"]]
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"grounded_{split}.jsonl").write_text(text, encoding="utf-8")
            kinds = Counter(r["kind"] for r in rows)
            ranks = Counter(r["cited"] for r in rows if r["cited"])
            print(f"grounded_{split}.jsonl: {len(rows)} records "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}; "
                  f"cited rank {dict(sorted(ranks.items()))})")  # fmt: skip


if __name__ == "__main__":
    main()
