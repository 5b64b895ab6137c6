"""What the server needs from storage: records, and narrow Protocols that move them.

- :mod:`.records`: the frozen dataclasses every layer shares (re-exported here, so
  ``from fader_server.storage.ports import Resource`` reads naturally).
- One module of Protocols per area, each a few methods: :mod:`.projects`,
  :mod:`.resources`, :mod:`.audit`, :mod:`.delivery`, :mod:`.rollouts`, :mod:`.accounts`,
  :mod:`.login_throttle`. A use case declares the transaction it needs as the union of the
  few it uses (``DefinitionTx``, ``RolloutTx``, ``IdentityTx``... next to the use case), as
  interfaces are defined by their consumers.
- :mod:`.store`: ``Store[Tx]`` (transactions), the full ``Database`` that ``app`` wires.

Nothing here imports an implementation: the SQL store (:mod:`fader_server.storage.sql`) is
constructed by ``app`` and ``cli`` only, and :mod:`fader_server.storage.memory` by tests.
"""

from fader_server.storage.ports.records import (
    JSON,
    PROJECT_SCOPE,
    AuditEntry,
    ChangeListener,
    EnvironmentChange,
    EventTotals,
    Incident,
    NewAuditEntry,
    NewPlan,
    NewToken,
    PlanUpdate,
    Project,
    Resource,
    ResourceType,
    RevocationListener,
    RolloutTemplate,
    StoredPlan,
    ThrottleCount,
    ThrottleKey,
    ThrottleScope,
    Token,
    TokenKind,
    User,
    VariantTotals,
    Version,
    Webhook,
)

__all__ = [
    "JSON",
    "PROJECT_SCOPE",
    "AuditEntry",
    "ChangeListener",
    "EnvironmentChange",
    "EventTotals",
    "Incident",
    "NewAuditEntry",
    "NewPlan",
    "NewToken",
    "PlanUpdate",
    "Project",
    "Resource",
    "ResourceType",
    "RevocationListener",
    "RolloutTemplate",
    "StoredPlan",
    "ThrottleCount",
    "ThrottleKey",
    "ThrottleScope",
    "Token",
    "TokenKind",
    "User",
    "VariantTotals",
    "Version",
    "Webhook",
]
