"""Templates (Jinja2, autoescaped, strict about undefined names) and the responses of the console.

Every page is rendered here so that every response carries the same headers: a Content Security
Policy that allows only this origin's own script and style (no inline script, so an injected
``<script>`` cannot run), no framing (a kill switch must not be clickjacked), no caching of
pages (token secrets are shown once and must not stay in a cache) and no referrer outside.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fader_server.web import csrf, frame
from fader_server.web import session as sessions

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _fingerprints() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC.iterdir()
        if path.is_file()
    }


_VERSIONS = _fingerprints()


def static(name: str) -> str:
    """The URL of a static file, with its content hash so browsers never run a stale copy."""
    return f"/static/{name}?v={_VERSIONS.get(name, '0')}"


def json_text(value: Any) -> str:
    """A JSON value as people read it in a page (not escaped for a script context)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static=static, url=frame.url, csrf_field=csrf.FIELD)
    env.filters.update(json_text=json_text, when=when)
    return env


templates = _environment()


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page. `context` must hold ``session`` (or None) and ``view`` (or None); the notice
    set by the previous action (if any) is shown once and then cleared."""
    notice = sessions.take_flash(request)
    html = templates.get_template(template).render(
        **{"title": "", "section": "", "errors": None, **context},
        notice=notice,
        path=request.url.path,
    )
    response = HTMLResponse(html, status_code=status)
    if notice is not None:
        sessions.clear_cookie(request, response, sessions.FLASH_COOKIE)
    return response


def redirect(request: Request, target: str, notice: str | None = None) -> RedirectResponse:
    """303 See Other to a local path, carrying a notice for the next page."""
    response = RedirectResponse(sessions.safe_next(target), status_code=303)
    if notice:
        sessions.flash(request, response, notice)
    return response
