"""Checks that the simulation's shortcuts change nothing; run it after changing the fleet or
the rollups (it prints what it compared and exits 1 on any difference):

    .venv/bin/python bench/guardrails/selfcheck.py

1. :class:`fleet.Cycle` (summaries far from any boundary added in bulk, without a delay drawn)
   against every summary handled apart. With a constant delay both consume the random stream
   the same way, so the rollouts must be identical, decision for decision.
2. The stage windows :class:`rollups.MinuteRollups` keeps up to date incrementally, against
   ``seconds_window`` applied afresh to every minute row at every evaluation, as the server's
   query does.

Both at one evaluation a minute and at every tick, with slow configuration propagation
(30 s, as for SDKs polling) so that summaries straddle stage changes and windows get
evaluations of another stage.
"""

from __future__ import annotations

import sys

from fleet import Fleet, FleetConfig
from rollups import ArmCounts, MinuteRollups
from simulate import Outcome, Scenario, Settings, simulate

from fader_server.rollout_logic.minute_windows import seconds_window
from fader_server.rollout_logic.plan import MetricGate
from fader_server.rollout_logic.stats import RateCounts

ROLLOUTS = 6
GATE = MetricGate("error_rate", "error", min_samples=200)
SCENARIOS = (
    Scenario("regression 1% → 2%", 0.01, 0.02, ROLLOUTS),
    Scenario("healthy, shift at 25%", 0.04, 0.04, ROLLOUTS, from_stage=3),
)


class ConstantDelay(Fleet):
    delay = 0.0

    def _delay(self) -> float:
        return self.delay


class CheckedRollups(MinuteRollups):
    evaluations = 0

    def windows(self) -> list[ArmCounts]:
        found = super().windows()
        totals = [[0, 0, 0, 0] for _ in self.starts]
        for minute, row in self._rows.items():
            window = seconds_window(minute * 60.0, self.starts)
            if window is not None:
                totals[window] = [a + b for a, b in zip(totals[window], row, strict=True)]
        wanted = [(RateCounts(t[0], t[1]), RateCounts(t[2], t[3])) for t in totals]
        if found != wanted:
            raise AssertionError(f"windows {found} != {wanted} with starts {self.starts}")
        CheckedRollups.evaluations += 1
        return found


def rollouts(settings: Settings, scenario: Scenario) -> list[Outcome]:
    return [
        simulate(
            scenario,
            GATE,
            settings,
            f"selfcheck/{scenario.name}/{index}",
            fleet_type=ConstantDelay,
            rollups_type=CheckedRollups,
        )
        for index in range(scenario.rollouts)
    ]


def main() -> int:
    failures = 0
    fleet = FleetConfig(propagation=30.0, delay_cap=4.0)
    for every, cadence in ((12, "once a minute"), (1, "every tick")):
        for delay in (0.01, 0.3, 3.9):
            ConstantDelay.delay = delay
            for scenario in SCENARIOS:
                bulk = rollouts(Settings(fleet, evaluate_every=every), scenario)
                apart = rollouts(Settings(fleet, evaluate_every=every, one_by_one=True), scenario)
                same = bulk == apart
                failures += not same
                foreign = sum(o.mixing.foreign for o in bulk)
                print(
                    f"{'same' if same else 'DIFFERENT'}: {scenario.name}, gate {cadence}, "
                    f"delay {delay} s: {len(bulk)} rollouts ({foreign} evaluations counted in "
                    "another stage's window)"
                )
    print(f"windows recomputed from every minute row at {CheckedRollups.evaluations} evaluations")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
