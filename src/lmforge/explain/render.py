"""Explanations as one self-contained HTML page: inline CSS, no scripts, no external URLs.

Each word of the text is highlighted green when it supports the explained label and red
when it argues against it, more opaque the larger its ``|weight|`` (scaled to the
largest weight of that explanation). Every string from the model or the user is
HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lmforge.explain.words import index_words

if TYPE_CHECKING:
    from lmforge.explain.explanation import Explanation

METHOD_NAMES = {"lime": "LIME", "ig": "Integrated gradients", "random": "Random ranking"}
FAITHFULNESS_ROWS = (
    ("comprehensiveness", "p(label) lost when the top-ranked words are removed", "higher"),
    ("sufficiency", "p(label) lost when only the top-ranked words are kept", "lower"),
    ("aopc_deletion", "mean p(label) lost while deleting words, top-ranked first", "higher"),
)
SUPPORT_RGB = "22, 163, 74"
AGAINST_RGB = "220, 38, 38"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2933; line-height: 1.5; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
section { border-top: 1px solid #d9dee3; }
.text { font-size: 1.1rem; white-space: pre-wrap; padding: 0.75rem; background: #f7f9fa; }
.text span { border-radius: 3px; padding: 0 1px; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { padding: 0.2rem 0.75rem; text-align: left; border-bottom: 1px solid #eef1f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #52606d; }
.legend span { padding: 0 0.4rem; border-radius: 3px; }
"""


def render_html(explanations: Sequence[Explanation], title: str | None = None) -> str:
    """One HTML page showing every explanation (e.g. LIME and IG of the same text).

    Args:
        explanations: One or more explanations; each gets its own section.
        title: The page heading (default: "Explanation of <model>").
    """
    model = explanations[0].model if explanations else ""
    heading = title or (f"Explanation of {model}" if model else "Explanation")
    sections = "\n".join(_section(explanation) for explanation in explanations)
    legend = (
        f'<p class="legend"><span style="background: rgba({SUPPORT_RGB}, 0.6)">green</span> '
        f'supports the label, <span style="background: rgba({AGAINST_RGB}, 0.6)">red</span> '
        "argues against it; stronger colour, larger weight.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(heading)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_e(heading)}</h1>\n{legend}\n{sections}\n</body>\n</html>\n"
    )


def _section(explanation: Explanation) -> str:
    largest = max((abs(w) for _, w in explanation.weights), default=0.0) or 1.0
    method = METHOD_NAMES.get(explanation.method, explanation.method)
    probabilities = ", ".join(
        f"{_e(name)} {p:.3f}"
        for name, p in sorted(explanation.probabilities.items(), key=lambda kv: -kv[1])
    )
    meta = (
        f"model <b>{_e(explanation.model or '?')}</b> &middot; label explained "
        f"<b>{_e(explanation.label)}</b> &middot; probabilities: {probabilities} &middot; "
        f"{explanation.seconds:.2f} s{_details(explanation)}"
    )
    if explanation.unit == "word":
        body = f'<p class="text">{_highlighted(explanation, largest)}</p>'
    else:
        body = f'<p class="text">{_e(explanation.text)}</p>'
    return (
        f"<section>\n<h2>{_e(method)}: why &ldquo;{_e(explanation.label)}&rdquo;</h2>\n"
        f'<p class="meta">{meta}</p>\n{body}\n'
        f"{_top_table(explanation, largest)}\n{_faithfulness_table(explanation)}\n</section>"
    )


def _details(explanation: Explanation) -> str:
    details = explanation.details
    if explanation.method == "lime" and "num_samples" in details:
        return f" &middot; {details['num_samples']} samples"
    if explanation.method == "ig" and "steps" in details:
        return (
            f" &middot; {details['steps']} steps, convergence delta "
            f"{details['convergence_delta']:.2g}"
        )
    return ""


def _highlighted(explanation: Explanation, largest: float) -> str:
    weight_of = dict(explanation.weights)
    pieces = []
    for piece in index_words(explanation.text).as_list:
        piece = str(piece)
        if piece in weight_of:
            weight = weight_of[piece]
            pieces.append(
                f'<span style="background: {_colour(weight, largest)}" '
                f'title="{weight:+.4f}">{_e(piece)}</span>'
            )
        else:
            pieces.append(_e(piece))
    return "".join(pieces)


def _top_table(explanation: Explanation, largest: float, k: int = 10) -> str:
    rows = "".join(
        f'<tr><td><span style="background: {_colour(w, largest)}">{_e(word)}</span></td>'
        f'<td class="number">{w:+.4f}</td></tr>'
        for word, w in explanation.top(k)
    )
    return (
        f"<table><thead><tr><th>top {_e(explanation.unit)}s by |weight|</th>"
        f"<th>weight</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _faithfulness_table(explanation: Explanation) -> str:
    scores = explanation.faithfulness
    if not scores:
        return '<p class="meta">No faithfulness scores for this explanation.</p>'
    rows = "".join(
        f'<tr><td>{name}</td><td class="number">{scores[name]:.4f}</td>'
        f"<td>{meaning}; {direction} is more faithful</td></tr>"
        for name, meaning, direction in FAITHFULNESS_ROWS
        if name in scores
    )
    return (
        "<table><thead><tr><th>faithfulness</th><th>value</th><th>meaning</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _colour(weight: float, largest: float) -> str:
    alpha = 0.08 + 0.82 * min(1.0, abs(weight) / largest) if weight else 0.0
    return f"rgba({SUPPORT_RGB if weight > 0 else AGAINST_RGB}, {alpha:.2f})"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
