"""The web console: server-rendered pages over the same services as the API.

Routes are split by area (auth, projects, dashboard, flags, rules, segments, rollouts,
history, tokens, members, imports); :func:`install` mounts them and the static files on the app.
Pages work without JavaScript; ``static/console.js`` only adds confirmation dialogs, checking as you
type and in-place results.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from fader_server.web import (
    auth,
    change_requests,
    dashboard,
    environments,
    flag_page,
    flags,
    history,
    imports,
    incidents,
    members,
    projects,
    promotion,
    propose,
    rollouts,
    rules,
    segments,
    sso,
    tokens,
    webhooks,
)
from fader_server.web.rendering import STATIC

# Order matters where paths overlap: `flags/_new` before `flags/{flag}`.
_MODULES = (
    auth,
    projects,
    dashboard,
    flags,
    flag_page,
    rules,
    segments,
    rollouts,
    incidents,
    history,
    tokens,
    webhooks,
    members,
    promotion,  # `environments/_compare` before `environments/{environment}`
    environments,
    change_requests,
    propose,
    imports,
    sso,
)


def install(app: FastAPI) -> None:
    for module in _MODULES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
