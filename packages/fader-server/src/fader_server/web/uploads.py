"""Console forms that carry files (``multipart/form-data``): the import page's source document
and contexts file, and the import form that sends the previewed document back.

Every other console form is URL-encoded and refuses files (:func:`forms.checked_form`). This one
takes at most :data:`MAX_FILES` files; what bounds their size is the server's cap on request
bodies (``FADER_MAX_BODY_BYTES``, applied before anything reads the body), the same cap as for
the JSON API, so the console accepts no larger document than the API does. The text fields are
checked like every form's (CSRF token, no NUL character).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from fader_server.web import csrf
from fader_server.web.forms import Form, refuse_nul
from fader_server.web.session import CurrentSession

MAX_FILES = 2
MAX_PART_BYTES = 64 << 20
"""Starlette's own cap on one text field (1 MiB by default) is lifted: the body cap is the one
limit, so an operator who raises it raises it for the console's import form too."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file: the name the browser gave it (for messages) and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UploadForm:
    form: Form
    files: dict[str, Upload] = field(default_factory=dict)
    """By field name; a file input left empty is absent."""


async def checked_upload(request: Request, session: CurrentSession) -> UploadForm:
    """The multipart form of a logged-in user's POST, once its CSRF token matches."""
    async with request.form(max_files=MAX_FILES, max_part_size=MAX_PART_BYTES) as data:
        texts = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
        refuse_nul(texts)
        csrf.verify(session.csrf, (v for k, v in texts if k == csrf.FIELD))
        files: dict[str, Upload] = {}
        for name, value in data.multi_items():
            if isinstance(value, UploadFile) and name not in files:
                content = await value.read()
                if content or value.filename:
                    files[name] = Upload(value.filename or name, content)
    return UploadForm(Form(texts), files)


CheckedUpload = Annotated[UploadForm, Depends(checked_upload)]
