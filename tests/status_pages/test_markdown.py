"""render_markdown: CommonMark with tables comes out as HTML, and nothing that could run script,
load a frame, restyle the page or carry a data:/javascript: URL survives the sanitiser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from control_plane.status_pages.markdown import render_markdown

ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "del", "s", "code", "pre"),
    *("blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td"),
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "rel"}, "img": {"src", "alt", "title"}, "ol": {"start"}}


class Elements(HTMLParser):
    """Every start tag of an HTML fragment, with its attributes, as a browser's tokenizer sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def url_scheme(url: str) -> str | None:
    """The scheme a browser reads in an attribute's URL (WHATWG URL: leading and trailing C0
    controls and spaces stripped, tabs and newlines removed anywhere), or None for a relative URL."""
    url = re.sub(r"[\t\n\r]", "", url.strip("".join(map(chr, range(0x21)))))
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    return match.group(1).lower() if match else None


def assert_inert(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Only allowed tags and attributes; every URL http(s), mailto or relative; links rel'd."""
    elements = Elements(html).elements
    for tag, attrs in elements:
        assert tag in ALLOWED_TAGS, (tag, html)
        assert set(attrs) <= ALLOWED_ATTRIBUTES.get(tag, set()), (tag, attrs, html)
        for name in ("href", "src"):
            scheme = url_scheme(attrs.get(name) or "")
            assert scheme in (None, "http", "https", "mailto"), (tag, attrs, html)
        if tag == "a":
            assert attrs["rel"] == "nofollow noopener noreferrer", html
    return elements


def test_it_renders_headings_emphasis_lists_and_quotes():
    html = render_markdown(
        "# Outage\n\n## Timeline\n\nThe *API* was **down**.\n\n- one\n- two\n\n3. three\n4. four\n\n> quoted"
    )
    assert "<h1>Outage</h1>" in html and "<h2>Timeline</h2>" in html
    assert "<em>API</em>" in html and "<strong>down</strong>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>' in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert_inert(html)


def test_it_renders_code_inline_and_fenced_escaped():
    html = render_markdown(
        "Run `rm -rf <dir>`:\n\n```python\nif a < b:\n    print('<b>')\n```\n\n    indented"
    )
    assert "<code>rm -rf &lt;dir&gt;</code>" in html
    assert "<pre><code>if a &lt; b:\n    print('&lt;b&gt;')\n</code></pre>" in html  # no class attribute
    assert "<pre><code>indented\n</code></pre>" in html
    assert_inert(html)


def test_it_renders_links_with_rel_and_autolinks():
    html = render_markdown(
        '[status](https://status.example.com "Status") <https://auto.example/x> '
        "[mail](mailto:ops@example.com)"
    )
    rel = 'rel="nofollow noopener noreferrer"'
    assert f'<a href="https://status.example.com" title="Status" {rel}>status</a>' in html
    assert f'<a href="https://auto.example/x" {rel}>https://auto.example/x</a>' in html
    assert f'<a href="mailto:ops@example.com" {rel}>mail</a>' in html
    assert [tag for tag, _ in assert_inert(html)] == ["p", "a", "a", "a"]


def test_it_renders_tables_without_inline_styles():
    html = render_markdown("| Region | Down |\n|:--|--:|\n| eu-west-1 | 12 min |\n| us-east-1 | 3 min |")
    assert html.startswith("<table>\n<thead>\n<tr>\n<th>Region</th>\n<th>Down</th>")
    assert "<tbody>\n<tr>\n<td>eu-west-1</td>\n<td>12 min</td>\n</tr>" in html
    assert "style" not in html
    assert [tag for tag, _ in assert_inert(html)].count("td") == 4


def test_it_keeps_https_images_and_drops_data_urls():
    html = render_markdown(
        "![graph](https://cdn.example.com/g.png) ![pixel](data:image/png;base64,iVBORw0KGgo=)"
    )
    assert '<img src="https://cdn.example.com/g.png" alt="graph">' in html
    assert "data:" not in html
    images = [attrs for tag, attrs in assert_inert(html) if tag == "img"]
    assert images == [{"src": "https://cdn.example.com/g.png", "alt": "graph"}, {"alt": "pixel"}]


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<style>body { display: none }</style>",
        '<iframe src="https://evil.example"></iframe>',
        "<div onclick=alert(1)>raw</div>",
        "<svg onload=alert(1)></svg>",
        "<!-- comment --><b>bold</b>",
        '<p style="position:fixed">x</p>',
    ],
)
def test_raw_html_is_shown_as_text_never_as_markup(text):
    html = render_markdown(text)
    elements = assert_inert(html)
    assert [tag for tag, _ in elements] == ["p"], html  # the paragraph of escaped text, nothing else
    assert "&lt;" in html


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](%20javascript:alert(1))",
        "[x](<java\tscript:alert(1)>)",
        "[x](< javascript:alert(1)>)",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<javascript:alert(1)>",
        "<data:text/html,<script>alert(1)</script>>",
        "[x][ref]\n\n[ref]: javascript:alert(1)",
        "![x](javascript:alert(1))",
    ],
)
def test_dangerous_urls_never_reach_an_href_or_src(text):
    html = render_markdown(text)
    urls = [attrs[name] or "" for _, attrs in assert_inert(html) for name in ("href", "src") if name in attrs]
    for url in urls:  # what is left is relative (a path on the page's site), or gone
        assert url_scheme(url) is None, html


def test_script_in_a_table_cell_or_code_span_stays_text():
    html = render_markdown("| a |\n|---|\n| <script>alert(1)</script> |\n\n`<iframe>`")
    assert [tag for tag, _ in assert_inert(html)] == [
        "table",
        "thead",
        "tr",
        "th",
        "tbody",
        "tr",
        "td",
        "p",
        "code",
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<code>&lt;iframe&gt;</code>" in html


def test_the_checks_above_catch_what_a_browser_would_run():
    assert url_scheme("\x01 java\tscript:alert(1)") == "javascript"
    assert url_scheme("DATA:text/html,x") == "data"
    assert url_scheme("%20javascript:alert(1)") is None and url_scheme("/path:x") is None
    with pytest.raises(AssertionError):
        assert_inert('<a href="javascript:alert(1)" rel="nofollow noopener noreferrer">x</a>')
    with pytest.raises(AssertionError):
        assert_inert('<img src="x" onerror="alert(1)">')
    with pytest.raises(AssertionError):
        assert_inert("<script>alert(1)</script>")
