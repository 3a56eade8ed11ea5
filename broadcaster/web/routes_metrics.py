"""``GET /metrics``: the web app's Prometheus metrics (broadcaster.metrics.WebMetrics).

Room names are as good as invitations, so the series are not public: a scrape must
come straight from loopback (no reverse-proxy headers) naming this machine in
``Host`` (not a DNS-rebinding page's domain), or carry the host key
(``Authorization: Bearer <host key>``, Prometheus' ``authorization`` setting).
"""

from __future__ import annotations

import weakref

from aiohttp import web

from broadcaster.metrics import WebMetrics, render
from broadcaster.web.auth import bearer, is_host, is_local_request
from broadcaster.web.errors import unauthorized
from broadcaster.web.keys import BOTS, WEBINARS

#: one WebMetrics per app, made on the first scrape (the app is frozen by then)
_METRICS: weakref.WeakKeyDictionary[web.Application, WebMetrics] = weakref.WeakKeyDictionary()
routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` (a local scraper or the host key): Prometheus text, never cached."""
    if not (is_host(request) or is_local_request(request)):
        raise unauthorized(
            "host key missing" if bearer(request) is None else "host key is wrong"
        )
    app = request.app
    m = _METRICS.get(app)
    if m is None:
        m = _METRICS[app] = WebMetrics()
    await m.refresh(app[WEBINARS], app.get(BOTS))
    body, ctype = render(m.registry)
    return web.Response(body=body, headers={"Content-Type": ctype,
                                            "Cache-Control": "no-store"})
