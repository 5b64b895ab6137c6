"""Change requests: changes to protected environments proposed, reviewed, then applied at once
(or at a scheduled time), instead of written directly (docs/change-control.md).

- :mod:`.policy`: an environment's policy (required, approvals, approver and emergency roles)
  and the refusal of direct writes where it applies.
- :mod:`.operations`: what a request changes, resolved at proposal time with the base version
  of each resource, and applied inside one transaction through the usual versioned writes.
- :mod:`.impact`: who gets what before and after, evaluated by the engine on a sample.
- :mod:`.service`: the use cases (propose, get, list, review, update, apply, cancel...).

This package's ``__init__`` imports nothing: :mod:`.policy` is imported by the flag and
definition services, which :mod:`.service` imports in turn.
"""
