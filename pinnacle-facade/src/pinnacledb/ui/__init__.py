"""``pinnacle ui``: a read-only web page (and JSON API) of a deployment.

Install it with ``pip install 'pinnacledb[ui]'`` (Starlette, uvicorn, Jinja2). Nothing here is
imported by ``import pinnacledb``: only the ``pinnacle ui`` command imports this package, and
the web libraries are imported by :mod:`pinnacledb.ui.app` when the app is built.

- :mod:`pinnacledb.ui.data`: what each page and API endpoint shows, as JSON-safe dicts read
  through the Datalayer (no web library needed; URIs redacted, secrets scrubbed).
- :mod:`pinnacledb.ui.layout`: the layered layout of the lineage graph, drawn as SVG.
- :mod:`pinnacledb.ui.openapi`: the OpenAPI document of the JSON API.
- :mod:`pinnacledb.ui.app`: the Starlette app (pages, API, token and read-only guards).
"""

from __future__ import annotations

__all__: list[str] = []
