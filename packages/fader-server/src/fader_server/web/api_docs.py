"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with every asset
served by Fader itself.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and a favicon and fonts from other
hosts), so the documentation was blank on a machine without internet access and every visit
told third parties who reads this server's API. The assets are vendored under
``static/vendor`` at pinned versions (``packages/fader-server/scripts/refresh_docs_assets.sh``
refreshes them and records their hashes in ``static/vendor/VERSIONS``).

The pages get their own Content Security Policy, as strict as the two libraries allow: scripts
only from this origin plus the one inline start-up script FastAPI writes, pinned by its hash (so
an injected script still cannot run); no other host for anything. ReDoc's page alone allows
inline styles: its styled-components add ``<style>`` elements at run time, and its search index
runs in a worker made from a ``blob:`` URL. The console keeps its own, stricter policy
(``rendering.SECURITY_HEADERS``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse

from fader_server.web.rendering import STATIC

VENDOR = STATIC / "vendor"
TITLE = "Fader API"

# Swagger UI's validator badge sends the spec's URL to validator.swagger.io (for any host but
# localhost). FastAPI's layout draws no badge today; turned off so a layout change cannot.
_SWAGGER_PARAMETERS = {"validatorUrl": None, "deepLinking": True}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@functools.cache  # read once per process, not once per app (tests build many)
def _asset(path: str) -> str:
    """The URL of a vendored file, with its content hash so an upgrade is never read stale."""
    digest = hashlib.sha256((VENDOR / path).read_bytes()).hexdigest()[:12]
    return f"/static/vendor/{path}?v={digest}"


def _policy(html: str, *, inline_styles: bool) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    script_src = f"script-src 'self' {hashes}".rstrip()
    style_src = "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'"
    return (
        f"default-src 'self'; {script_src}; {style_src}; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _page(response: HTMLResponse, *, inline_styles: bool) -> tuple[bytes, dict[str, str]]:
    body = bytes(response.body)
    headers = {
        "Content-Security-Policy": _policy(body.decode(), inline_styles=inline_styles),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return body, headers


def router(openapi_url: str) -> APIRouter:
    """The two pages, rendered once: they depend only on the vendored files and the spec URL."""
    favicon = _asset("swagger-ui/favicon-32x32.png")
    swagger_body, swagger_headers = _page(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=TITLE,
            swagger_js_url=_asset("swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=_asset("swagger-ui/swagger-ui.css"),
            swagger_favicon_url=favicon,
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        ),
        inline_styles=False,
    )
    redoc_body, redoc_headers = _page(
        get_redoc_html(
            openapi_url=openapi_url,
            title=TITLE,
            redoc_js_url=_asset("redoc/redoc.standalone.js"),
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        ),
        inline_styles=True,
    )
    docs = APIRouter(include_in_schema=False)

    @docs.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger_body, headers=swagger_headers)

    @docs.get("/redoc")
    def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_body, headers=redoc_headers)

    return docs


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc; create the app with ``docs_url=None, redoc_url=None``."""
    if app.openapi_url is None:
        return
    app.include_router(router(app.openapi_url))
