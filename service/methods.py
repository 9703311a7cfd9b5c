"""Which HTTP methods a path answers, asked of the app's own routes.

Two users: the `Allow` header of a 405, which must list every method the resource supports
(RFC 9110 §15.5.6), not those of the first route whose path matched (FastAPI's default: `PUT
/admin/provider` beside `GET /admin/provider` answered OPTIONS with `Allow: GET`); and the admin
gate, which lets a method no route of a known admin path declares through to that 405 instead of
asking for a token first (`TRACE /admin/flags` is "not allowed", whoever sends it).

The routes are asked through Starlette's public `matches(scope)`, one scope per method, not read
from their attributes: FastAPI (0.165) wraps included routers in private objects.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match

from service.responses import JSON

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CACHE_MAX = 1024  # paths remembered; a path parameter's every value is a new path


class RouteMethods:
    def __init__(self, routes) -> None:
        self._routes = routes  # the app's list: read when asked, after every router is included
        self._known: dict[str, frozenset[str]] = {}

    def allowed(self, path: str) -> frozenset[str]:
        """Every method some route of `path` answers; empty for a path no route matches."""
        known = self._known.get(path)
        if known is None:
            known = frozenset(m for m in METHODS if any(
                route.matches({"type": "http", "path": path, "root_path": "", "method": m,
                               "headers": []})[0] == Match.FULL for route in self._routes))
            if len(self._known) >= _CACHE_MAX:
                self._known.clear()
            self._known[path] = known
        return known

    async def method_not_allowed(self, request: Request, exc) -> JSON:
        allow = ", ".join(sorted(self.allowed(request.url.path)))
        return JSON({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})
