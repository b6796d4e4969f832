"""A sink's `forward_when`, as the question its forwarder asks before each batch: may I
send now? Answered from the latest committed values and the wall clock; the answer
when not is the reason, in words, that status shows."""

from __future__ import annotations

from collections.abc import Callable

from gateway.clock import Clock
from gateway.config.schema import ForwardWhen
from gateway.config.weekly import WeeklyWindow
from gateway.state.latest import LatestValues

#: "" when the sink may send; otherwise why it waits
Gate = Callable[[], str]


def make_gate(rule: ForwardWhen, latest: LatestValues, clock: Clock) -> Gate:
    windows = [WeeklyWindow.parse(w) for w in rule.during]
    tests: list[tuple[str, float]] = [(word, value) for word, value in
                                      (("equals", rule.equals), ("below", rule.below),
                                       ("above", rule.above)) if value is not None]

    def gate() -> str:
        if windows:
            now = clock.local()
            if not any(w.contains(now) for w in windows):
                return f"waiting: outside {', '.join(rule.during)}"
        if rule.metric:
            value = latest.value(rule.device, rule.metric)
            word, wanted = tests[0]
            wants = f"sends while {rule.metric} of {rule.device} {word.replace('equals', 'is')}"
            if value is None:
                return f"waiting: {rule.metric} of {rule.device} not heard yet ({wants} {wanted:g})"
            held = (word == "equals" and value != wanted) or \
                (word == "below" and not value < wanted) or \
                (word == "above" and not value > wanted)
            if held:
                return f"waiting: {rule.metric} of {rule.device} is {value:g} ({wants} {wanted:g})"
        return ""

    return gate
