"""Real lift: each flow's conversion against its hold-out group, and A/B variants of a step judged by
reply, handoff and conversion rates with their Wilson score intervals (95 %)."""

from __future__ import annotations

from dataclasses import dataclass

from core.metrics.figures import Attribution
from core.metrics.history import History
from core.metrics.stats import Rate, wilson

__all__ = ["HoldoutComparison", "VariantFigures", "holdouts", "variants"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldoutComparison:
    flow: str
    treated: Rate  # conversion of the runs that got the flow's messages
    control: Rate  # conversion of the held-out runs (no message)

    @property
    def lift(self) -> float | None:
        """Percentage points the flow adds: treated rate minus control rate."""
        if self.treated.value is None or self.control.value is None:
            return None
        return self.treated.value - self.control.value


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantFigures:
    flow: str
    step: str
    variant: str
    template: str | None
    runs: int
    sent: int
    reply: Rate  # replied sends / sends at the step
    handoff: Rate  # runs handed off / runs
    conversion: Rate  # converted runs / runs


def holdouts(history: History, att: Attribution) -> list[HoldoutComparison]:
    out = []
    for flow in sorted({r.flow for r in history.runs if r.holdout}):
        runs = [att.outcomes[r.id] for r in history.runs if r.flow == flow]
        treated = [o for o in runs if not o.run.holdout]
        control = [o for o in runs if o.run.holdout]
        out.append(HoldoutComparison(flow=flow, treated=wilson(sum(o.converted for o in treated), len(treated)),
                                     control=wilson(sum(o.converted for o in control), len(control))))
    return out


def variants(history: History, att: Attribution) -> list[VariantFigures]:
    arms = sorted({(r.flow, step, name) for r in history.runs if not r.holdout
                   for step, name in dict(r.vars.get("_variants") or {}).items()})
    out = []
    for flow, step, name in arms:
        runs = [att.outcomes[r.id] for r in history.runs
                if r.flow == flow and not r.holdout and r.variant(step) == name]
        sends = [m for o in runs for m in o.sends if m.step == step]
        out.append(VariantFigures(
            flow=flow, step=step, variant=name, template=sends[0].template if sends else None, runs=len(runs),
            sent=len(sends), reply=wilson(sum(m.id in att.replies for m in sends), len(sends)),
            handoff=wilson(sum(o.handed_off for o in runs), len(runs)),
            conversion=wilson(sum(o.converted for o in runs), len(runs))))
    return out
