"""Each system under test, set up for local evaluation with no network, as one timeable call.

A *system* is one way of evaluating the flag of ``cases.py``: Fader's engine (two entry points),
LaunchDarkly, Unleash, GrowthBook, and flagd (through OpenFeature and its resolver directly).
Everything a call needs -- the client, the flag key, the SDK's own context object for the user
-- is built here, once, so that the timed statement is the evaluation alone.

What this module must not do: time anything, or decide what counts as a correct answer (that is
``run.py``'s job). It is imported only inside the benchmark's virtual environment.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from cases import (
    CASES,
    FADER_DOCUMENT,
    FLAG_KEY,
    FLAGD_DOCUMENT,
    GROWTHBOOK_FEATURES,
    LAUNCHDARKLY_DATA,
    ROLLOUT_PERCENT,
    UNLEASH_FEATURES,
    Case,
)


@dataclass(frozen=True, slots=True)
class Call:
    """One evaluation, as `timeit` runs it: ``prelude; expr`` in `namespace`.

    `expr` is the SDK's own evaluation call; `prelude` is what that SDK needs before each call
    (only GrowthBook's shared instance has one: ``set_attributes``). `read` turns the call's
    return value into the boolean the flag served.
    """

    expr: str
    namespace: dict[str, Any]
    prelude: str = ""
    read: Callable[[Any], Any] = bool

    @property
    def statement(self) -> str:
        return f"{self.prelude}; {self.expr}" if self.prelude else self.expr

    def run_once(self) -> Any:
        """Evaluate once, outside any timer, and return the served value."""
        if self.prelude:
            exec(self.prelude, self.namespace)
        return self.read(eval(self.expr, self.namespace))


@dataclass(slots=True)
class System:
    """A row of the results table: a name, the package measured and a call for each case."""

    name: str
    package: str
    calls: dict[str, Call]
    note: str = ""
    close: Callable[[], None] = field(default=lambda: None)
    split_value: Callable[[str], bool] | None = None
    """For Fader's rows: case C's value computed from the bucketing module, not the engine."""

    @property
    def version(self) -> str:
        if self.package == "python":
            return platform.python_version()
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return "?"


def _floor() -> list[System]:
    """The do-nothing call, timed like every other: the floor under any per-call figure."""

    def noop(flag_key: str, context: Any, default: bool) -> None:
        return None

    calls = {
        case.label: Call("noop(KEY, ctx, False)", {"noop": noop, "KEY": FLAG_KEY, "ctx": {}})
        for case in CASES
    }
    return [System("python empty call (floor)", "python", calls, "def noop(a, b, c): return None")]


def _split_value(algorithm: str) -> Callable[[str], bool]:
    """The 25% split's answer for a targeting key, straight from Fader's bucketing functions."""
    from fader_engine.bucketing import hash_v2, hash_v3, pick

    cumulative = [ROLLOUT_PERCENT * 1000, 100_000]

    def value(targeting_key: str) -> bool:
        if algorithm == "v2":
            hashed = hash_v2(FLAG_KEY + targeting_key)
        else:
            hashed = hash_v3([FLAG_KEY, targeting_key])
        return pick(hashed, cumulative) == 0

    return value


def _fader_context(case: Case) -> dict[str, Any]:
    return {"targetingKey": case.targeting_key, **case.attributes}


def _fader(workdir: Path) -> list[System]:
    import fader_engine

    engine = fader_engine.load(FADER_DOCUMENT)
    resolve = {}
    evaluate = {}
    for case in CASES:
        ctx = _fader_context(case)
        resolve[case.label] = Call(
            "resolve(KEY, ctx, False)",
            {"resolve": engine.resolve_boolean, "KEY": FLAG_KEY, "ctx": ctx},
            read=lambda resolution: resolution.value,
        )
        evaluate[case.label] = Call(
            "evaluate(KEY, ctx)",
            {"evaluate": engine.evaluate, "KEY": FLAG_KEY, "ctx": ctx},
            read=lambda resolution: resolution.value,
        )
    # The same engine on flagd's document, bucketing as flagd 0.6 does (v3): the like-for-like
    # row for "flagd resolver (direct)", and a check that both agree on case C.
    flagd_engine = fader_engine.load(FLAGD_DOCUMENT, bucketing="v3")
    on_flagd = {
        case.label: Call(
            "resolve(KEY, ctx, False)",
            {"resolve": flagd_engine.resolve_boolean, "KEY": FLAG_KEY, "ctx": _fader_context(case)},
            read=lambda resolution: resolution.value,
        )
        for case in CASES
    }
    return [
        System(
            "fader resolve_boolean",
            "fader-engine",
            resolve,
            "returns value+variant+reason",
            split_value=_split_value("v2"),
        ),
        System(
            "fader evaluate",
            "fader-engine",
            evaluate,
            "untyped; returns a Resolution",
            split_value=_split_value("v2"),
        ),
        System(
            "fader resolve_boolean (flagd doc)",
            "fader-engine",
            on_flagd,
            "flagd's JSON loaded by Fader, bucketing v3",
            split_value=_split_value("v3"),
        ),
    ]


SDK_USERS = 10_000
"""Distinct users the "10k users" rows cycle through: more than any interval's exact bound,
so the SDK's distinct-context counting takes its sketch path, as in a busy service."""


class _StaticSource:
    """A data source that delivers one flag set at start and nothing else: no network."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def start(self, holder: Any) -> None:
        import fader_engine
        from fader_sdk.flag_set import FlagSet, Origin

        holder.replace(FlagSet(1, fader_engine.load(self.document), self.document, Origin.FILE))

    def close(self) -> None:
        return None


def _fader_sdk(workdir: Path) -> list[System]:
    """Fader's SDK as an application calls it: ``client.boolean`` with summaries on (counting
    every evaluation, a daemon thread posting a summary every 5 s to an in-process transport
    that accepts it) and with events off; plus rows cycling through 10,000 users, each with
    the bare engine on the same users."""
    import itertools

    import httpx

    import fader_engine
    from fader_sdk import FaderClient

    def accept(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"accepted": 1, "refused": []})

    def client(events: bool) -> Any:
        return FaderClient(
            "fdr_srv_bench",
            source=_StaticSource(FADER_DOCUMENT),
            transport=httpx.MockTransport(accept),
            init_timeout=0,
            events=events,
        )

    counting, silent = client(True), client(False)
    engine = fader_engine.load(FADER_DOCUMENT)
    on, off, many_sdk, many_engine = {}, {}, {}, {}
    for case in CASES:
        ctx = _fader_context(case)
        on[case.label] = Call(
            "boolean(KEY, ctx, False)", {"boolean": counting.boolean, "KEY": FLAG_KEY, "ctx": ctx}
        )
        off[case.label] = Call(
            "boolean(KEY, ctx, False)", {"boolean": silent.boolean, "KEY": FLAG_KEY, "ctx": ctx}
        )
        users = [{**ctx, "targetingKey": f"{case.targeting_key}-{i}"} for i in range(SDK_USERS)]
        many_sdk[case.label] = Call(
            "boolean(KEY, next(users), False)",
            {"boolean": counting.boolean, "KEY": FLAG_KEY, "users": itertools.cycle(users)},
        )
        many_engine[case.label] = Call(
            "resolve(KEY, next(users), False)",
            {
                "resolve": engine.resolve_boolean,
                "KEY": FLAG_KEY,
                "users": itertools.cycle(users),
            },
            read=lambda resolution: resolution.value,
        )
    return [
        System(
            "fader sdk boolean, summaries on",
            "fader-sdk",
            on,
            "FaderClient.boolean; counts into a summary",
            counting.close,
            split_value=_split_value("v2"),
        ),
        System(
            "fader sdk boolean, events off",
            "fader-sdk",
            off,
            "FaderClient.boolean, events=False",
            silent.close,
            split_value=_split_value("v2"),
        ),
        System(
            "fader sdk boolean, summaries on, 10k users",
            "fader-sdk",
            many_sdk,
            f"cycling {SDK_USERS:,} users: sketch path",
        ),
        System(
            "fader resolve_boolean, 10k users",
            "fader-engine",
            many_engine,
            "the bare engine on the same users",
        ),
    ]


def _launchdarkly(workdir: Path) -> list[System]:
    from ldclient.client import LDClient
    from ldclient.config import Config
    from ldclient.context import Context
    from ldclient.impl.integrations.files import file_data_source
    from ldclient.integrations import Files

    # The file source parses with PyYAML whenever it can import it (PyYAML is in this venv,
    # pulled in by the flagd provider). Our file is JSON: make it take its JSON path, as it
    # would in an application without PyYAML. Parsing happens once, outside any timing.
    file_data_source.have_yaml = False
    path = workdir / "launchdarkly-flags.json"
    path.write_text(json.dumps(LAUNCHDARKLY_DATA))
    config = Config(
        sdk_key="bench-no-network",
        update_processor_class=Files.new_data_source(paths=[str(path)], auto_update=False),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = LDClient(config=config, start_wait=5)
    if not client.is_initialized():
        raise RuntimeError("LaunchDarkly client did not initialise from its file data source")
    calls = {}
    for case in CASES:
        builder = Context.builder(case.targeting_key).kind("user")
        for name, value in case.attributes.items():
            builder.set(name, value)
        context = builder.build()
        calls[case.label] = Call(
            "variation(KEY, ctx, False)",
            {"variation": client.variation, "KEY": FLAG_KEY, "ctx": context},
        )
    return [
        System(
            "launchdarkly variation",
            "launchdarkly-server-sdk",
            calls,
            "file data source (JSON), events off",
            client.close,
        )
    ]


def _unleash(workdir: Path) -> list[System]:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    cache = FileCache("fader-bench", directory=str(workdir / "unleash-cache"))
    cache.bootstrap_from_dict(UNLEASH_FEATURES)
    client = UnleashClient(
        url="http://127.0.0.1:9/unused",  # never contacted: no fetching, registration, metrics
        app_name="fader-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
        refresh_interval=24 * 3600,  # the offline connector's re-read of its cache: never in a run
    )
    client.initialize_client(fetch_toggles=False)
    calls = {}
    for case in CASES:
        context = {"userId": case.targeting_key, "properties": dict(case.attributes)}
        calls[case.label] = Call(
            "is_enabled(KEY, ctx)",
            {"is_enabled": client.is_enabled, "KEY": FLAG_KEY, "ctx": context},
        )
    return [
        System(
            "unleash is_enabled",
            "UnleashClient",
            calls,
            "bootstrapped, fetch/metrics/registration off",
            client.destroy,
        )
    ]


def _growthbook(workdir: Path) -> list[System]:
    from growthbook import GrowthBook

    gb = GrowthBook(features=GROWTHBOOK_FEATURES)
    calls = {}
    for case in CASES:
        attributes = {"id": case.targeting_key, **case.attributes}
        calls[case.label] = Call(
            "is_on(KEY)",
            {
                "set_attributes": gb.set_attributes,
                "is_on": gb.is_on,
                "KEY": FLAG_KEY,
                "attrs": attributes,
            },
            prelude="set_attributes(attrs)",
        )
    return [
        System(
            "growthbook set_attributes+is_on",
            "growthbook",
            calls,
            "one shared instance (not thread-safe)",
            gb.destroy,
        )
    ]


def _flagd(workdir: Path) -> list[System]:
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    path = workdir / "flagd-flags.json"
    path.write_text(json.dumps(FLAGD_DOCUMENT))
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=str(path),
        # In file mode the deadline is also the watcher thread's polling period: keep the poll
        # out of the timed loops (the file never changes during a run).
        deadline_ms=3_600_000,
    )
    # Plain set_provider initialises in the background; early evaluations return defaults.
    api.set_provider_and_wait(provider, domain="fader-bench")
    client = api.get_client(domain="fader-bench")
    resolver = provider.resolver
    through_client = {}
    direct = {}
    for case in CASES:
        context = EvaluationContext(
            targeting_key=case.targeting_key, attributes=dict(case.attributes)
        )
        through_client[case.label] = Call(
            "get_boolean_value(KEY, False, ctx)",
            {"get_boolean_value": client.get_boolean_value, "KEY": FLAG_KEY, "ctx": context},
        )
        direct[case.label] = Call(
            "resolve(KEY, False, ctx)",
            {"resolve": resolver.resolve_boolean_details, "KEY": FLAG_KEY, "ctx": context},
            read=lambda details: details.value,
        )
    return [
        System(
            "openfeature+flagd get_boolean_value",
            "openfeature-provider-flagd",
            through_client,
            "in-process file mode, via the OpenFeature client",
            api.shutdown,
        ),
        System(
            "flagd resolver (direct)",
            "openfeature-provider-flagd",
            direct,
            "provider.resolver.resolve_boolean_details",
        ),
    ]


BUILDERS: dict[str, Callable[[Path], list[System]]] = {
    "floor": lambda _workdir: _floor(),
    "fader": _fader,
    "fader-sdk": _fader_sdk,
    "launchdarkly": _launchdarkly,
    "unleash": _unleash,
    "growthbook": _growthbook,
    "flagd": _flagd,
}
"""Setup functions by short name, in table order. Each may raise: the run reports it."""


def build(name: str, workdir: Path) -> list[System]:
    """Set one system up; SDK log noise about the absent network is silenced first."""
    logging.getLogger().setLevel(logging.ERROR)
    return BUILDERS[name](workdir)
