"""The routes flags and segments share: project-wide, versioned definitions.

Both are created, read, updated (``If-Match``), deleted, listed by version and reverted the same
way, through :class:`~fader_server.services.definitions.DefinitionService`.
:func:`add_definition_routes` adds those six routes to a router; ``flags.py`` and ``segments.py``
say only what differs: where the routes live, the models, and how a definition is rendered.
Paths, operation ids and schemas are those the handlers had when each module wrote its own.

The handlers are typed against what every definition model offers (:class:`DefinitionBody`,
:class:`NewDefinitionBody`), which is what mypy checks; FastAPI validates a request body against
the annotation it finds in the signature, so each route's handler is given a signature naming
that route's own model (:func:`_accepting`).
"""

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel

from fader_server.api import pagination
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import RevertIn, VersionOut
from fader_server.api.security import Caller, IfMatch, Svc
from fader_server.services import Services
from fader_server.services.definitions import DefinitionService
from fader_server.storage.ports import Resource, Version

_Handler = TypeVar("_Handler", bound=Callable[..., BaseModel])


class DefinitionBody(Protocol):
    """What an update's body offers (``FlagFields``, ``SegmentFields``)."""

    @property
    def comment(self) -> str | None: ...
    def data(self) -> dict[str, Any]: ...


class NewDefinitionBody(DefinitionBody, Protocol):
    """What a creation's body offers (``FlagIn``, ``SegmentIn``): the key besides."""

    @property
    def key(self) -> str: ...


def _accepting(model: type[object], handler: _Handler) -> _Handler:
    """`handler`, with FastAPI told to validate its `body` as `model`: FastAPI reads the
    signature (``inspect.signature``, which honours ``__signature__``), so only the body's
    annotation changes; the handler itself is unchanged."""
    signature = inspect.signature(handler)
    parameters = [
        p.replace(annotation=model) if p.name == "body" else p
        for p in signature.parameters.values()
    ]
    function: Any = handler  # a plain function, which may carry a signature of its own
    function.__signature__ = signature.replace(parameters=parameters)
    return handler


def version_out(version: Version) -> VersionOut:
    return VersionOut(
        version=version.version,
        data=version.data,
        deleted=version.deleted,
        actor=version.actor,
        comment=version.comment,
        created_at=version.created_at,
    )


def add_definition_routes(
    router: APIRouter,
    *,
    noun: str,
    collection: str,
    service: Callable[[Services], DefinitionService],
    create_model: type[NewDefinitionBody],
    update_model: type[DefinitionBody],
    out_model: type[BaseModel],
    respond: Callable[[Resource, Response], BaseModel],
) -> None:
    """Add create, get, update, delete, versions and revert for one kind of definition.

    `noun` names the path parameter (``{flag}``) and the operations (``get_flag``);
    `collection` is the path of the list below the router's prefix (``/flags``, or ``""``);
    `respond` renders a definition and sets the response headers (``ETag``...).
    """
    item = f"{collection}/{{{noun}}}"
    Key = Annotated[str, Path(alias=noun)]  # noqa: N806 - a type, named like one

    def create(
        project: str, body: NewDefinitionBody, svc: Svc, caller: Caller, response: Response
    ) -> BaseModel:
        created = service(svc).create(caller, project, body.key, body.data(), body.comment)
        return respond(created, response)

    def get(project: str, key: Key, svc: Svc, caller: Caller, response: Response) -> BaseModel:
        return respond(service(svc).get(caller, project, key), response)

    def update(
        project: str,
        key: Key,
        body: DefinitionBody,
        svc: Svc,
        caller: Caller,
        expected: IfMatch,
        response: Response,
    ) -> BaseModel:
        updated = service(svc).update(caller, project, key, body.data(), expected, body.comment)
        return respond(updated, response)

    def delete(
        project: str,
        key: Key,
        svc: Svc,
        caller: Caller,
        expected: IfMatch,
        comment: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> None:
        service(svc).delete(caller, project, key, expected, comment)

    def versions(
        project: str, key: Key, svc: Svc, caller: Caller, limit: Limit = 50, cursor: Cursor = None
    ) -> list[VersionOut]:
        before = pagination.decode_int(cursor)
        return [version_out(v) for v in service(svc).versions(caller, project, key, limit, before)]

    def revert(
        project: str,
        key: Key,
        body: RevertIn,
        svc: Svc,
        caller: Caller,
        expected: IfMatch,
        response: Response,
    ) -> BaseModel:
        reverted = service(svc).revert(caller, project, key, body.version, expected, body.comment)
        return respond(reverted, response)

    router.add_api_route(
        collection,
        _accepting(create_model, create),
        methods=["POST"],
        name=f"create_{noun}",
        status_code=status.HTTP_201_CREATED,
        response_model=out_model,
    )
    router.add_api_route(item, get, methods=["GET"], name=f"get_{noun}", response_model=out_model)
    router.add_api_route(
        item,
        _accepting(update_model, update),
        methods=["PUT"],
        name=f"update_{noun}",
        response_model=out_model,
    )
    router.add_api_route(
        item,
        delete,
        methods=["DELETE"],
        name=f"delete_{noun}",
        status_code=status.HTTP_204_NO_CONTENT,
    )
    router.add_api_route(
        f"{item}/versions", versions, methods=["GET"], name=f"{noun}_versions", tags=["history"]
    )
    router.add_api_route(
        f"{item}/revert",
        revert,
        methods=["POST"],
        name=f"revert_{noun}",
        response_model=out_model,
        tags=["history"],
    )
