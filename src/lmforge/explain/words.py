"""Words: the unit both text explainers score, split exactly as LIME splits them.

LIME's ``LimeTextExplainer`` (defaults: ``split_expression=r"\\W+"``, ``bow=True``) cuts
a text into runs of word characters and the separators between them; each distinct word
is one feature, and removing it removes every occurrence. Integrated gradients map
their subword attributions onto the same words, and the faithfulness metrics remove
words the same way, so all three agree on what "a word" is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from lime.lime_text import IndexedString


def index_words(text: str) -> Any:
    """LIME's ``IndexedString`` for ``text``: ``.inverse_vocab`` holds the distinct words
    in order of first appearance; ``.inverse_removing(ids)`` deletes words by index."""
    return IndexedString(text)


def words_of(text: str) -> list[str]:
    """The distinct words of ``text`` in order of first appearance."""
    return [str(word) for word in index_words(text).inverse_vocab]


def char_to_word(indexed: Any) -> np.ndarray:
    """For each character of the text, the index of the distinct word it belongs to
    (``-1`` for separators: spaces and punctuation)."""
    owner = np.full(len(indexed.raw), -1, dtype=np.int64)  # (chars,)
    for word_id, pieces in enumerate(indexed.positions):
        for piece in pieces:
            start = int(indexed.string_start[piece])
            owner[start : start + len(indexed.as_list[piece])] = word_id
    return owner


def without_words(indexed: Any, word_ids: Sequence[int]) -> str:
    """The text with every occurrence of the words ``word_ids`` removed."""
    return str(indexed.inverse_removing(list(word_ids)))


def only_words(indexed: Any, word_ids: Sequence[int]) -> str:
    """The text with every word except ``word_ids`` removed (separators stay)."""
    keep = set(word_ids)
    return without_words(indexed, [i for i in range(indexed.num_words()) if i not in keep])
