"""HTTP request metrics, observed by the outermost layer (api/middleware.py RequestEdge), so the
answers given before routing (the AI ingest's fast path, status pages' replayed answers, 413s,
CORS preflights) count too.

Requests are labelled by route template (`/api/monitors/{monitor_id}`), never the raw path, so
the series stay as many as the routes. Routing leaves the matched route in the scope; a request
answered before routing is matched here against the same routes (once per method and path, kept
in a small table), and one no route matches is `unmatched`. This runs on the API's hottest path:
each (route, method) keeps its series (metrics.HttpSeries: plain numbers), found in nested dicts.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Match, Router

from control_plane.observability.metrics import HTTP, HttpSeries

Scope = MutableMapping[str, Any]

UNMATCHED = "unmatched"
# A layer that answers before routing and knows its route (the AI ingest's fast path, a replayed
# status page) names the template here, so the path need not be matched again.
ROUTE_TEMPLATE_KEY = "traxo.route_template"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OTHER_METHOD = "other"  # a client may send any token as its method: not a label value each
_FOUND_LIMIT = 4096  # unrouted (method, path) pairs remembered before the table starts again


class RouteSeries:
    """Finds a request's series: the route routing matched (left in the scope), else the same
    routes matched here. The outermost layer (api/middleware.py RequestEdge) observes into it."""

    def __init__(self, router: Router) -> None:
        """`router`: the app's (its routes are read when a request was answered before routing)."""
        self.router = router
        self._routes: list[Any] | None = None
        self._series: dict[str, dict[str, HttpSeries]] = {}  # HTTP's, by the method as sent
        self._found: dict[tuple[str, str], str] = {}

    def of(self, scope: Scope) -> HttpSeries:
        """The series of a request that has been answered (or has failed)."""
        route = scope.get("route")
        template = getattr(route, "path_format", None) if route is not None else None
        template = template or scope.get(ROUTE_TEMPLATE_KEY)
        method = scope["method"]
        return self._series_of(template or self._match(scope, method), method)

    def _series_of(self, template: str, method: str) -> HttpSeries:
        by_method = self._series.get(template)
        if by_method is None:
            by_method = self._series[template] = {}
        series = by_method.get(method)
        if series is None:
            if method not in _METHODS:
                return HTTP.series(template, _OTHER_METHOD)  # not kept here: any token may come
            series = by_method[method] = HTTP.series(template, method)
        return series

    def _match(self, scope: Scope, method: str) -> str:
        """The template of the route routing would have picked: the first full match, else the
        first partial one (another method on that path), else UNMATCHED."""
        key = (method, scope["path"])
        found = self._found.get(key)
        if found is not None:
            return found
        found = UNMATCHED
        partial = None
        if self._routes is None:  # on the first such request: routes are all included by then
            self._routes = list(iter_route_contexts(self.router.routes))
        probe = {
            "type": "http",
            "method": method,
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
        }
        for route in self._routes:
            try:
                match = route.matches(probe)[0]
            except Exception:  # a route that cannot judge this probe does not match it
                continue
            if match is Match.FULL:
                found = route.path_format or UNMATCHED
                break
            if match is Match.PARTIAL and partial is None:
                partial = route.path_format
        else:
            found = partial or UNMATCHED
        if len(self._found) >= _FOUND_LIMIT:
            self._found.clear()
        self._found[key] = found
        return found
