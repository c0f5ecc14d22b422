"""A status page's view (status_pages.public.PageView) as one HTML document, with the
Content-Security-Policy that lets exactly its own inline styles and images in, and its ETag.

No script runs on the page; the styles are inline (one request a page) and allowed by their
SHA-256 hashes, so a page's custom CSS is allowed as written by its owner and nothing else is.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections import OrderedDict
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from importlib.resources import files
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from control_plane.core.timefmt import iso
from control_plane.status_pages.health import DayUptime
from control_plane.status_pages.markdown import render_markdown
from control_plane.status_pages.public import PAST_INCIDENT_DAYS, PageView, PublicComponent, PublicIncident

OVERALL_WORDS = {
    "operational": "All systems operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
COMPONENT_WORDS = {
    "operational": "Operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
IMPACT_WORDS = {"none": "No impact", "minor": "Minor", "major": "Major", "critical": "Critical"}
UPDATE_WORDS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}
# The favicon a page without one of its own gets: a dot in its overall status's colour.
_DOT_COLOURS = {
    "operational": "#1a7f37",
    "degraded": "#9a6700",
    "partial_outage": "#bc4c00",
    "major_outage": "#cf222e",
}

# A day's bar by its uptime, best first: (at least this percent, class).
_BAR_LEVELS = ((99.95, "bar-full"), (99.0, "bar-high"), (95.0, "bar-mid"), (80.0, "bar-low"))


class RenderedPage:
    """A rendered document; its body, ETag and gzipped body computed once, when first asked for
    (a page rendered once is served to many visitors: see render_page)."""

    __slots__ = ("_body", "_etag", "_gzipped", "content_security_policy", "html")

    def __init__(self, html: str, content_security_policy: str) -> None:
        self.html = html
        self.content_security_policy = content_security_policy
        self._body: bytes | None = None
        self._etag: str | None = None
        self._gzipped: bytes | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RenderedPage):
            return NotImplemented
        return (self.html, self.content_security_policy) == (other.html, other.content_security_policy)

    def __hash__(self) -> int:
        return hash((self.html, self.content_security_policy))

    def __repr__(self) -> str:
        return f"RenderedPage({len(self.html)} characters)"

    @property
    def body(self) -> bytes:
        if self._body is None:
            # "replace": a lone surrogate a JSON escape let into some field must not fail the page.
            self._body = self.html.encode("utf-8", "replace")
        return self._body

    @property
    def etag(self) -> str:
        """A strong validator of the body and its policy (a custom CSS edit changes both)."""
        if self._etag is None:
            digest = hashlib.sha256(self.body)
            digest.update(self.content_security_policy.encode())
            self._etag = f'"{digest.hexdigest()[:32]}"'
        return self._etag

    @property
    def gzipped(self) -> bytes:
        """The body gzipped (level 6, no timestamp, so the same body gives the same bytes)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


# The latest rendering of each page (by page id and path): a cached view (public.PageViewCache)
# rendered for the same day, with each maintenance window on the same side of `now`, is the same
# document, so it is rendered once, not once per visitor.
_RENDERED: OrderedDict[tuple[str, str], tuple[PageView, datetime, RenderedPage]] = OrderedDict()
_RENDERED_SIZE = 256


def render_page(view: PageView, now: datetime, page_path: str | None = None) -> RenderedPage:
    """The page as visitors see it at `now`; `page_path` is where its /status/{slug} is served
    (behind a proxy's root path, say), for the links to its feeds."""
    key = (view.page.id, page_path or "")
    kept = _RENDERED.get(key)
    if kept is not None and kept[0] is view and _same_document(view, kept[1], now):
        return kept[2]
    rendered = _render_page(view, now, page_path)
    _RENDERED[key] = (view, now, rendered)
    _RENDERED.move_to_end(key)
    while len(_RENDERED) > _RENDERED_SIZE:
        _RENDERED.popitem(last=False)
    return rendered


def _same_document(view: PageView, then: datetime, now: datetime) -> bool:
    """Whether `view` rendered at `then` and at `now` reads the same: the day (the incident
    history's days) and each maintenance window's 'In progress' or 'Scheduled'."""
    return then.date() == now.date() and all(
        (window.starts_at <= then) == (window.starts_at <= now) for window in view.maintenance
    )


def _render_page(view: PageView, now: datetime, page_path: str | None) -> RenderedPage:
    page = view.page
    page_path = page_path or f"/status/{page.slug}"
    custom_css = inert_css(page.custom_css) if page.custom_css else ""
    html = (
        _environment()
        .get_template("status_page.html.j2")
        .render(
            view=view,
            page=page,
            now=now,
            sections=component_sections(view.components),
            history=incident_history(view.past_incidents, now.date()),
            base_css=Markup(_base_css()),
            custom_css=Markup(custom_css),
            hide_branding=page.hide_branding,
            favicon_data_url=_status_dot(view.overall_status),
            feed_url=f"{page_path}/feed",
            # Not under page_path: a custom domain's page is its root, and the route is the same.
            subscribe_url=f"/status/{page.slug}/subscribe",
        )
    )
    styles = [_base_css(), custom_css] if custom_css else [_base_css()]
    images = [url for url in (page.logo_url, page.favicon_url) if url]
    return RenderedPage(html, content_security_policy(styles, images))


def render_not_found() -> RenderedPage:
    html = (
        _environment()
        .get_template("not_found.html.j2")
        .render(base_css=Markup(_base_css()), custom_css="", hide_branding=False)
    )
    return RenderedPage(html, content_security_policy([_base_css()], []))


def inert_css(css: str) -> str:
    """A page's CSS made unable to leave its style element: every `<` becomes the CSS escape
    `\\3C ` (still a `<` inside a CSS string), so no `</style` or `<!--` can be written.

    Line ends are normalised and NULs dropped as the HTML parser would, so that the text the
    browser hashes is the text hashed here.
    """
    css = css.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    css = css.encode("utf-8", "replace").decode()  # as the body will be sent (RenderedPage.body)
    return css.replace("<", "\\3C ")


def content_security_policy(styles: list[str], image_urls: list[str]) -> str:
    """Nothing but the given inline styles, and images over https (a post-mortem's, a logo's), from
    a plain-http logo's or favicon's own origin, or data: URLs (the default favicon); no script, no
    frames around the page, no base or form elsewhere."""
    hashes = " ".join(f"'sha256-{_sha256(style)}'" for style in styles)
    origins = sorted({origin for origin in map(_origin, image_urls) if origin and origin.startswith("http:")})
    images = " ".join(["https:", *origins, "data:"])
    return (
        f"default-src 'none'; style-src {hashes}; img-src {images}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def component_sections(components: list[PublicComponent]) -> list[tuple[str | None, list[PublicComponent]]]:
    """The components in their order, ungrouped ones first, then each group where its first
    component stands."""
    ungrouped = [component for component in components if component.group is None]
    groups: dict[str, list[PublicComponent]] = {}
    for component in components:
        if component.group is not None:
            groups.setdefault(component.group, []).append(component)
    sections: list[tuple[str | None, list[PublicComponent]]] = [(None, ungrouped)] if ungrouped else []
    return [*sections, *groups.items()]


def incident_history(incidents: list[PublicIncident], today: date) -> list[tuple[date, list[PublicIncident]]]:
    """The last 14 UTC days, today first, each with the incidents that started that day (an
    incident that started earlier, under the oldest day); days without any are kept, saying so."""
    days = [today - timedelta(days=offset) for offset in range(PAST_INCIDENT_DAYS)]
    by_day: dict[date, list[PublicIncident]] = {day: [] for day in days}
    for incident in incidents:
        day = max(incident.started_at.date(), days[-1])
        if day in by_day:
            by_day[day].append(incident)
    return [(day, by_day[day]) for day in days]


def bars(component: PublicComponent) -> Markup:
    """A component's days as its bars' list items, oldest first.

    Built here rather than in the template, each day's item remembered: a page of 50 components
    has 4,500 of them, and the same days come back on every request.
    """
    name, declared = component.name, component.declared_by_day
    return Markup(
        "".join(
            [
                _bar(day.day, day.uptime, day.checks, day.incidents, name, declared.get(day.day, ()))
                for day in component.health.days
            ]
        )
    )


@lru_cache(maxsize=100_000)
def _bar(
    day: date, uptime: float | None, checks: int, incidents: int, name: str, declared: tuple[str, ...]
) -> str:
    figures = DayUptime(day, uptime, checks, incidents)
    return f'<li class="bar {bar_class(figures)}" title="{escape(bar_title(figures, name, declared))}"></li>'


def bar_class(day: DayUptime) -> str:
    if day.uptime is None:
        return "bar-none"
    return next((name for floor, name in _BAR_LEVELS if day.uptime >= floor), "bar-down")


def _day_incidents(day: DayUptime, name: str, declared: tuple[str, ...]) -> list[str]:
    """The titles of a day's incidents: the component's DOWN incidents (as their cards call them)
    and those declared on the page for it."""
    if not day.incidents:
        return list(declared)
    return [f"{name} is down" + (f" (x{day.incidents})" if day.incidents > 1 else ""), *declared]


def bar_title(day: DayUptime, name: str = "", declared: tuple[str, ...] = ()) -> str:
    """A bar's tooltip: the day, its uptime and checks, and its incidents by title."""
    titles = _day_incidents(day, name, declared)
    incidents = _count(day.incidents + len(declared), "incident")
    if titles:
        incidents += f": {'; '.join(titles)}"
    if day.uptime is None:
        return f"{day.day.isoformat()}: no data · {incidents}"
    return f"{day.day.isoformat()}: {percent(day.uptime)} uptime, {_count(day.checks, 'check')} · {incidents}"


def bars_summary(component: PublicComponent) -> str:
    """The bars in words, for those who cannot see them or hover them: the span's uptime, each day
    that had an incident (newest first, with its uptime), and how many days were not fully up, the
    worst of them named."""
    health, declared = component.health, component.declared_by_day
    noted = []
    for day in reversed(health.days):
        titles = _day_incidents(day, component.name, declared.get(day.day, ()))
        if titles:
            figures = "no data" if day.uptime is None else f"{percent(day.uptime)} uptime"
            noted.append(f"{_day_label(day.day)}: {figures}, {'; '.join(titles)}")
    uptime = f"{percent(health.uptime)} uptime" if health.uptime is not None else "No uptime data"
    summary = f"{uptime} over {len(health.days)} days; {_count(len(noted), 'day')} with incidents"
    if noted:
        summary += f". {'. '.join(noted)}"
    short = [day for day in health.days if day.uptime is not None and day.uptime < 100]
    if short:
        worst = min(short, key=lambda day: (day.uptime or 0.0, -day.day.toordinal()))
        summary += (
            f". {_count(len(short), 'day')} below 100%, the lowest {_day_label(worst.day)}"
            f" at {percent(worst.uptime)}"
        )
    return summary + ("." if noted or short else "")


def percent(value: float | None) -> str:
    if value is None:
        return "No data"
    return f"{value:.2f}%".replace(".00%", "%") if value == 100 else f"{value:.2f}%"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number:,} {noun}s"


def _when(moment: datetime) -> str:
    return moment.strftime("%b %-d, %Y %H:%M UTC")


def _day_label(day: date) -> str:
    return day.strftime("%b %-d, %Y")


# A heading tag as the sanitiser leaves it: no attributes.
_HEADING = re.compile(r"<(/?)h([1-6])>")


def _postmortem(markdown: str, level: int) -> Markup:
    """A post-mortem as sanitised HTML (markdown-it without raw HTML, then nh3), its headings
    moved under the incident's own (`level`), so the page's outline stays whole."""
    html = render_markdown(markdown)
    shifted = _HEADING.sub(lambda tag: f"<{tag[1]}h{min(int(tag[2]) + level, 6)}>", html)
    return Markup(shifted)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;,'\""):
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _status_dot(status: str) -> str:
    colour = _DOT_COLOURS.get(status, _DOT_COLOURS["operational"])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
        f'<circle cx="8" cy="8" r="7" fill="{colour}"/></svg>'
    )
    return f"data:image/svg+xml,{quote(svg)}"


@cache
def _base_css() -> str:
    return inert_css((files("control_plane.web") / "static" / "status.css").read_text(encoding="utf-8"))


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("control_plane.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        overall_words=OVERALL_WORDS,
        component_words=COMPONENT_WORDS,
        impact_words=IMPACT_WORDS,
        update_words=UPDATE_WORDS,
    )
    environment.filters.update(
        iso=iso,
        when=_when,
        day_label=_day_label,
        bars=bars,
        bars_summary=bars_summary,
        percent=percent,
        postmortem=_postmortem,
    )
    return environment
