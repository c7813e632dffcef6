"""Article bodies: CommonMark (markdown-it-py, tables and strikethrough on) rendered to HTML,
then sanitised with nh3 (ammonia): only a list of harmless tags and attributes survives, links
keep http(s)/mailto and site paths only, ``<script>``/``<style>`` are dropped with their
content, every ``on*`` handler and ``javascript:`` URL is removed. The body may hold raw HTML
(an editor pasting a table); the sanitiser, not the Markdown parser, decides what stays."""

from __future__ import annotations

import html

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "kbd", "li", "mark", "ol", "p", "pre", "s", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "code": {"class"},
}


def render(body: str) -> str:
    """Safe HTML of a Markdown body (for the reader, the preview and search snippets' source)."""
    return nh3.clean(
        _md.render(body or ""),
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def plain_text(body: str) -> str:
    """The words of a body without markup (what search indexes)."""
    text = nh3.clean(render(body), tags=set(), attributes={})
    return " ".join(html.unescape(text).split())
