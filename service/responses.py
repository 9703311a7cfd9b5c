"""orjson-encoded JSON responses (FastAPI deprecated its own ORJSONResponse)."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)
