"""How a serving process sets up Python's cyclic garbage collector, and why.

CPython walks every object the collector tracks in a full (oldest-generation) collection, with
the event loop stopped. A connected SDK stream holds about 150 such objects (the suspended
coroutines of its ASGI call chain, their closures, its task, transport and subscription), so
at 10,000 streams a full collection took 100 to 420 ms (measured with ``gc.callbacks`` under
``bench/delivery/propagation.py``). CPython starts one whenever the middle generation has been
collected 10 times and the survivors have grown by a quarter since the last one, which is
again and again while streams connect: a change published meanwhile reached every stream that
much later. Such collections found next to nothing to free: streams live as long as their
connections, and a request's garbage dies young, in the two younger generations.

So a serving process (:func:`apply`, called by ``fader serve`` and by each of its workers once
the app is built, never by tests that build apps):

* freezes what exists once the app is built (modules, the app and its routes, settings):
  no collection walks those again (:func:`gc.freeze`, made for long-lived servers);
* starts a full collection only after :data:`FULL_COLLECTION_AFTER` collections of the middle
  generation instead of 10; CPython's own rule (survivors grown by a quarter) still applies on
  top, so full collections still happen, only far less often.

The price: cyclic garbage that did survive into the oldest generation (a closed stream whose
objects form a cycle) is freed later, at the next full collection, instead of sooner.
``python_gc_collections_total`` on ``/metrics`` counts collections per generation.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_AFTER = 1000
"""Collections of the middle generation between two full collections (CPython's default: 10).
With this, 10,000 streams connecting and receiving changes triggered none in
``bench/delivery/propagation.py`` (several of 100 to 420 ms each with the default)."""


def apply() -> None:
    """Freeze what exists now and space full collections out (module docstring). Once per
    serving process, after the app is built and before it serves."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
    gc.freeze()
