"""Highlighted snippets, built from the hit's own stored text with the shared analyzer (so both
backends highlight the same words). A snippet only ever quotes the document it belongs to, and
documents reach this point only after the visibility filter of the query."""

from __future__ import annotations

import html
import re

from tessera.search.analysis import _WORD_RE, ParsedQuery, _span_terms, analyze

_SPLIT = re.compile(r"(\s+)")
WINDOW = 24
#: Words of a body looked at for the snippet (the best window is searched among them).
MAX_TOKENS = 1500


def _word_matches(token: str, terms: set[str], prefixes: set[str]) -> bool:
    if "@" in token or ((token[:1].isdigit() or token[:1] in "+(") and not any(c.isalpha() for c in token)):
        groups = [set(p) for p in analyze(token, raw=True)]  # phones, e-mails, numbers
    else:
        groups = [set(_span_terms(w, True)) for w in _WORD_RE.findall(token)]
    for alts in groups:
        if alts & terms:
            return True
        if prefixes and any(a.startswith(p) for a in alts for p in prefixes):
            return True
    return False


def highlight(
    text: str, query: ParsedQuery, window: int = WINDOW, memo: dict[str, bool] | None = None
) -> tuple[str, int]:
    """HTML: the ``window`` words of ``text`` around the most matches, matches in ``<mark>``;
    and how many words matched."""
    terms = query.all_terms()
    prefixes = query.prefixes()
    tokens = [t for t in _SPLIT.split(text.strip()) if t and not t.isspace()]
    if not tokens:
        return "", 0
    memo = {} if memo is None else memo
    hits = []
    for tok in tokens[:MAX_TOKENS]:
        hit = memo.get(tok)
        if hit is None:
            hit = memo[tok] = _word_matches(tok, terms, prefixes)
        hits.append(hit)
    tokens = tokens[: len(hits)]
    prefix_sums = [0]
    for h in hits:
        prefix_sums.append(prefix_sums[-1] + h)
    best_start, best = 0, -1
    for start in range(0, max(1, len(tokens) - window + 1)):
        count = prefix_sums[min(len(hits), start + window)] - prefix_sums[start]
        if count > best:
            best, best_start = count, start
    # Start a little before the first match so it reads in context.
    if best > 0:
        first = next(i for i in range(best_start, len(hits)) if hits[i])
        best_start = max(0, min(best_start, first - 3))
    chosen = tokens[best_start : best_start + window]
    marks = hits[best_start : best_start + window]
    parts = [
        f"<mark>{html.escape(t)}</mark>" if m else html.escape(t) for t, m in zip(chosen, marks, strict=True)
    ]
    out = " ".join(parts)
    if best_start > 0:
        out = "… " + out
    if best_start + window < len(tokens):
        out += " …"
    return out, sum(hits)


def snippet(
    title: str, body: str, query: ParsedQuery, memo: dict[str, bool] | None = None
) -> tuple[str, str]:
    """(highlighted title, highlighted body snippet). Pass one ``memo`` for all hits of a query."""
    memo = {} if memo is None else memo
    title_html, _ = highlight(title, query, window=60, memo=memo)
    body_html, matched = highlight(body, query, memo=memo)
    return title_html, body_html if matched or body else ""
