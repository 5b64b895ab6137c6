"""Moving flags into Fader from other systems, with parity proven by the source's own SDK.

Each source system has a *translator* (its document in, a Fader document out, plus every
construct that could not be represented) and a *source evaluator* (the system's own SDK, loaded
from the same document, answering for one flag and one context). :mod:`.parity` runs both over
the same contexts. Translators are pure; evaluators import their SDK lazily, because the SDKs
are the optional ``fader-server[migrate]`` extra. See docs/migration.md.
"""
