"""Incidents that lead to fixes (docs/incidents.md).

- :mod:`.service`: the use cases: open by hand, acknowledge, resolve, reopen, post-mortem,
  action items, the lists, and the escalation of overdue items.
- :mod:`.records`: the rules' constants, the audit entries every step appends, the timeline.

Rollbacks open their incidents in their own transaction
(:func:`fader_server.services.rollouts.transitions.open_incident`), with the same audit entry.
"""
