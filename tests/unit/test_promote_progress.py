"""promote's progress: the copy starts before the plan (and so the progress bar) exists; nothing is lost."""

from __future__ import annotations

from ci_oras.steps.promote import _ProgressRelay


def test_events_before_the_plan_reach_the_bar_in_order_then_later_ones_directly() -> None:
    relay = _ProgressRelay()
    relay.report("mount", 10)
    relay.report("manifest", 2)
    seen: list[tuple[str, int]] = []
    relay.connect(lambda what, size: seen.append((what, size)))
    assert seen == [("mount", 10), ("manifest", 2)]
    relay.report("blob", 5)
    assert seen == [("mount", 10), ("manifest", 2), ("blob", 5)]


def test_without_a_bar_events_are_dropped_not_kept() -> None:
    relay = _ProgressRelay()
    relay.report("blob", 1)
    relay.connect(None)
    relay.report("blob", 2)
    assert relay._early is None
