"""Use cases for segments.

Decision (docs/adr/0002): segments are **project-wide**. "Internal users" means the same people
in development and in production, and one definition avoids drift between environments; a flag
configuration decides per environment whether to use it. A segment change is validated against
every environment's document, like a flag definition change, and needs the admin role when it
changes who is in a segment that a protected environment uses (by a flag's rule, or a stage of
an unfinished release plan there).
"""

from __future__ import annotations

from fader_server.services.definitions import DefinitionService, DefinitionTx
from fader_server.services.flags import validate_definitions
from fader_server.storage.ports import JSON, Project, ResourceType


def _search_text(key: str, data: JSON) -> str:
    return " ".join(p for p in (key, data.get("name") or "", data.get("description") or "") if p)


class SegmentService(DefinitionService):
    resource_type = ResourceType.SEGMENT
    noun = "segment"

    def search_text(self, key: str, data: JSON) -> str:
        return _search_text(key, data)

    def validate(self, tx: DefinitionTx, project: Project, key: str, data: JSON | None) -> None:
        validate_definitions(tx, project, segments={key: data})

    def pending(self, key: str, data: JSON | None) -> dict[str, dict[str, JSON | None]]:
        return {"segments": {key: data}}
