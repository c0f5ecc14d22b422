"""Markdown that people write on a status page (a declared incident's post-mortem) as HTML safe to
put in the public page: CommonMark with tables, then sanitised against an allow-list.

Two layers, so that neither alone has to be right: markdown-it-py runs with raw HTML off (a `<script>`
in the text comes out as the text `&lt;script&gt;`) and refuses javascript:/vbscript:/file: links;
nh3 then keeps only the tags and attributes listed here, only http, https and mailto URLs (no data:,
no javascript:), and gives every link rel="nofollow noopener noreferrer".
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "em",
    "strong",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "img",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
# No style, class or id: the page's CSP and layout are the page's. A table column's alignment
# (markdown-it's style="text-align:...") is dropped with them.
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
}
# Tags removed with what they contain (the rest of a disallowed tag's text stays, as text).
_DROPPED_WITH_CONTENT = {
    "script",
    "style",
    "iframe",
    "object",
    "embed",
    "noscript",
    "template",
    "svg",
    "math",
}

_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    link_rel="nofollow noopener noreferrer",
    strip_comments=True,
)
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


@lru_cache(maxsize=256)  # a page shows the same post-mortems to every visitor
def render_markdown(text: str) -> str:
    """`text` (CommonMark with tables) as sanitised HTML."""
    return _CLEANER.clean(_MARKDOWN.render(text))
