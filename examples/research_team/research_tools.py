"""Tools of the research-team example: BM25 search over the notes in ``docs/``.

``$RESEARCH_DOCS`` may name another folder of ``.md`` / ``.txt`` files. The index is
built per call (the set is small), so an edited note is found at once.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

DOCS = Path(__file__).with_name("docs")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the their "
    "them then there these this to was were what when which while with".split()
)
# BM25's usual constants: term-frequency saturation and length normalisation.
_K1, _B = 1.5, 0.75


def _folder() -> Path:
    return Path(os.environ.get("RESEARCH_DOCS") or DOCS)


def _documents() -> dict[str, str]:
    files = sorted(_folder().glob("*.md")) + sorted(_folder().glob("*.txt"))
    return {path.name: path.read_text() for path in files}


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _title(text: str, name: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else name
    return first.lstrip("# ").strip()


def _snippet(text: str, terms: set[str], width: int = 240) -> str:
    """The sentence with the most query terms, cut to ``width`` characters."""
    body = text.strip().partition("\n")[2]  # without the title line
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(body.split()))
    best = max(sentences, key=lambda s: len(terms.intersection(_terms(s))), default="")
    return best if len(best) <= width else best[: width - 3] + "..."


def search_docs(query: str, limit: int = 3) -> list[dict[str, Any]]:
    """Search the research notes (BM25); the best matches first, with a snippet each.
    Read a whole note with read_doc."""
    wanted = set(_terms(query))
    if not wanted:
        raise ValueError("the query has no searchable words")
    docs = _documents()
    tokens = {name: _terms(text) for name, text in docs.items()}
    average = sum(len(t) for t in tokens.values()) / max(len(tokens), 1)
    holding = Counter(term for t in tokens.values() for term in set(t) & wanted)
    scored = []
    for name, words in tokens.items():
        counts = Counter(words)
        score = 0.0
        for term in wanted:
            if not counts[term]:
                continue
            idf = math.log(1 + (len(docs) - holding[term] + 0.5) / (holding[term] + 0.5))
            norm = counts[term] + _K1 * (1 - _B + _B * len(words) / average)
            score += idf * counts[term] * (_K1 + 1) / norm
        if score > 0:
            scored.append((score, name))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [
        {
            "name": name,
            "title": _title(docs[name], name),
            "score": round(score, 3),
            "snippet": _snippet(docs[name], wanted),
        }
        for score, name in scored[: max(1, limit)]
    ]


def read_doc(name: str) -> str:
    """The full text of one research note, by the name search_docs gave."""
    docs = _documents()
    if name not in docs:
        raise LookupError(f"no note {name!r}; notes: {', '.join(docs)}")
    return docs[name]
