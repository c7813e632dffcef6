"""The crawl of the browser tests: every same-site link reachable from the dashboard, opened in
chromium, with the checks issue 15 asks of every page (no 5xx, no internal code where a person
reads, no English left on a page in another language)."""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: Paths never followed: signing out, the pages of signed-out people (sign-in, password reset:
#: their language is the browser's), the API and its documentation (the JSON schema shows field
#: names and enum values on purpose), the vendored static files.
SKIP = re.compile(r"^/(logout|login|password-reset|api(/|$)|schema(/|$)|static/)")
#: Each page shape (the path with its numbers as ``{id}``, plus the names of its query
#: parameters) is opened at most this many times: ten client cards show nothing one does not,
#: and list pages have a link for every filter, sort and page.
PER_SHAPE = 2
PER_QUERY_SHAPE = 1


def shape(path: str) -> str:
    parts = urlsplit(path)
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
    base = re.sub(r"/\d+(?=/|$)", "/{id}", parts.path)
    return base + ("?" + "&".join(names) if names else "")


# -- internal codes ------------------------------------------------------------------------------


#: Label groups whose codes are looked for as whole elements (see ``known_codes``).
WORD_GROUPS = (".status", ".type", ".relation", ".priority", ".scope", ".outcome")


def known_codes(english: bool = True) -> tuple[set[str], set[str]]:
    """``(codes, words)`` to look for on pages, from the label registry (``tessera.i18n.
    register_labels``: the kernel's groups and every loaded plugin's, so the list grows with
    them) and the sales plugin's pipelines (stage and requirement keys):

    * ``codes`` are never words of a sentence: ``party.status``, ``activity.call``,
      ``in_progress``, ``required.proposal_issued``, ``sales.deal.won``; found on any page in
      any language they are an untranslated code;
    * ``words`` are codes of statuses, types, relations, priorities, scopes, outcomes and
      stages that are also English words (``call``, ``current``, ``won``): an element whose
      whole text is one of them (a pill, a cell, an option) shows the code (labels are
      capitalised: "Current"); codes whose English label is the code itself (``work``, a phone
      type) only count on a page in another language. (Codes of other groups, ``export`` or
      ``sales``, are also what people type as tags or name plugins by.)
    """
    from tessera import i18n

    codes: set[str] = set()
    words: set[str] = set()
    for group, labels in i18n._LABELS.items():
        codes.add(group)
        prefix = group.rsplit(".", 1)[0]
        for code in labels:
            if re.search(r"[._:]", code):
                codes.add(code)
            else:
                if group.endswith(WORD_GROUPS) and (not english or labels[code] != code):
                    words.add(code)
                codes.add(f"{prefix}.{code}")  # activity.call, party.new ...
    try:  # the sales plugin's stage and requirement keys (when it is installed)
        from tessera_sales import pipelines
    except ImportError:
        pipelines = None  # type: ignore[assignment]
    if pipelines is not None:
        for pipeline in (pipelines.B2B, pipelines.CROSS_SELL):
            codes.add(pipeline["key"])
            for stage in pipeline["stages"]:
                (codes if "_" in stage["key"] else words).add(stage["key"])
                for requirement in stage.get("required", []):
                    codes.add(f"required.{requirement['key']}")
                    if "_" in requirement["key"]:
                        codes.add(requirement["key"])
    return codes, words


#: Shapes of codes whatever their key: requirement keys, funnel/loss keys (``lost:price``,
#: ``open:needs``), a raw status change (``new -> current``).
CODE_PATTERNS = (
    re.compile(r"\brequired\.[a-z_]+"),
    re.compile(r"\b(?:lost|open|won):[a-z_]"),
    re.compile(r"\b[a-z_]+ -> [a-z_]+\b"),
)


def _quote(text: str, match: re.Match[str]) -> str:
    """The match with a little of its line around it, for the failure message."""
    start, end = max(match.start() - 40, 0), min(match.end() + 40, len(text))
    return f"{match.group(0)!r} in «{' '.join(text[start:end].split())}»"


def codes_in(text: str, codes: Iterable[str]) -> list[str]:
    """The internal codes shown in ``text`` (whole tokens: ``sales.deal.won`` is not found in
    ``tessera_sales.deal.wonder``, nor a code inside an e-mail address or a path, nor a
    permission pattern such as ``knowledge_base.*`` that the roles page shows on purpose), each
    quoted with its surroundings."""
    found = []
    for code in codes:
        match = re.search(rf"(?<![\w.@/-]){re.escape(code)}(?![\w@/-]|\.[\w*])", text)
        if match:
            found.append(_quote(text, match))
    for pattern in CODE_PATTERNS:
        found.extend(_quote(text, match) for match in pattern.finditer(text))
    return sorted(set(found))


def words_in(text: str, words: Iterable[str]) -> list[str]:
    """Whole words of ``words`` (case-sensitive) in ``text``, each quoted with its surroundings."""
    found = []
    for word in words:
        match = re.search(rf"(?<![\w.@/-]){re.escape(word)}(?![\w@/-])", text)
        if match:
            found.append(_quote(text, match))
    return sorted(set(found))


# -- the crawl -----------------------------------------------------------------------------------


@dataclass
class PageText:
    """What a person reads on a page."""

    text: str  # the title and the visible text
    leaves: list[str]  # texts of elements without child elements: cells, pills, options
    nav: str  # the header's navigation


TEXTS = """({
  text: document.title + '\\n' + document.body.innerText,
  leaves: Array.from(document.body.querySelectorAll('*'))
    .filter(e => e.children.length === 0 && !['SCRIPT', 'STYLE'].includes(e.tagName))
    .map(e => e.textContent.trim()).filter(t => t && t.length < 60),
  nav: Array.from(document.querySelectorAll('header nav')).map(e => e.innerText).join(' '),
})"""


def leaf_codes(leaves: Iterable[str], words: set[str]) -> list[str]:
    """Elements whose whole text is a code word (``<span class="pill">current</span>``)."""
    return sorted({f"{leaf!r} (a whole element)" for leaf in leaves if leaf in words})


@dataclass
class Crawl:
    """What a crawl saw: each opened path with its status, and what was wrong."""

    statuses: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    shapes: Counter[str] = field(default_factory=Counter)

    def report(self) -> str:
        return "\n".join(self.problems)


async def crawl(
    page: Any,
    origin: str,
    start: str = "/app",
    max_pages: int = 60,
    check_text: Callable[[PageText], list[str]] | None = None,
    on_new_shape: Callable[[Any, str], Awaitable[Any]] | None = None,
) -> Crawl:
    """Open ``start`` and every same-site link reachable from it (GET only: links, never
    forms) in ``page``, breadth first, at most ``max_pages`` pages and a few of each shape.
    A page that answers 5xx, or whose texts ``check_text(PageText)`` finds fault with, is a
    problem; ``on_new_shape(page, shape)`` is called on the first page of each shape (to take
    a screenshot)."""
    from playwright.async_api import Error as PlaywrightError

    result = Crawl()
    queue: deque[tuple[str, str]] = deque([(start, "(start)")])
    queued = {start}
    while queue and len(result.statuses) < max_pages:
        path, source = queue.popleft()
        kind = shape(path)
        limit = PER_QUERY_SHAPE if "?" in kind else PER_SHAPE
        if result.shapes[kind] >= limit:
            continue
        result.shapes[kind] += 1
        try:
            response = await page.goto(path)
        except PlaywrightError as exc:
            # A download (an export, a PDF) is not a page: ask for it without the browser.
            if "Download is starting" not in str(exc) and "ERR_ABORTED" not in str(exc):
                raise
            fetched = await page.context.request.get(path)
            result.statuses[path] = fetched.status
            if fetched.status >= 500:
                result.problems.append(f"{path} (linked from {source}) answered {fetched.status}")
            continue
        status = response.status if response is not None else 0
        result.statuses[path] = status
        if status >= 500:
            result.problems.append(f"{path} (linked from {source}) answered {status}")
            continue
        content_type = (response.headers.get("content-type", "") if response else "").split(";")[0]
        if content_type != "text/html":
            continue
        if result.shapes[kind] == 1 and on_new_shape is not None:
            await on_new_shape(page, kind)
        if check_text is not None:
            texts = PageText(**await page.evaluate(TEXTS))
            for fault in check_text(texts):
                result.problems.append(f"{path} (linked from {source}) shows {fault}")
        # getAttribute, not .href: an SVG link's .href is an SVGAnimatedString (charts link
        # their bars to the records behind them), not a URL.
        hrefs: list[str] = await page.eval_on_selector_all(
            "a[href]", "els => els.map(e => new URL(e.getAttribute('href'), document.baseURI).href)"
        )
        for href in hrefs:
            parts = urlsplit(href)
            if f"{parts.scheme}://{parts.netloc}" != origin:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if SKIP.match(parts.path) or target in queued:
                continue
            queued.add(target)
            queue.append((target, path))
    return result
