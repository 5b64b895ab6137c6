"""Release-plan use cases, one module per concern (the pure logic they apply is in
:mod:`fader_server.rollout_logic`; what runs by itself, in :mod:`fader_server.runtime`):

- :mod:`.commands`: :class:`~.commands.RolloutService`, the reads and the commands people give
  (create, start, pause, resume, advance, abort), and the scheduler's entry point.
- :mod:`.step`: the scheduler's step, one automatic decision applied.
- :mod:`.transitions`: how any transition is written (configuration, state, audit, incident).
- :mod:`.checks`: what makes a plan or a template meaningful in its project.
- :mod:`.records`: audit entries, incident timelines and the status view of a plan.
- :mod:`.templates`: templates, the settings plans are made from (webhooks are
  :mod:`fader_server.services.webhooks`).
"""
