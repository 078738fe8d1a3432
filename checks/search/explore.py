"""One round of the hypothesis search: examples drawn and checked until one shows a failure of the
gradients the round watches, then shrunk by hypothesis to the smallest example that still shows one.

One example is a set of sizes for the symbolic dims and a point seed s; the points drawn from seeds s,
s + 1, …, s + VALUES_PER_SIZE − 1 at those sizes are checked together (checks/verdict/stacked.py). The
first round watches every gradient; once it has found a failure, the search goes on in further rounds
watching only the gradients that still pass (checks/search/search.py), so that a gradient wrong only at
sizes where the others are right gets its own smallest counterexample. A round counts the examples it
generated that passed for every gradient it watches before its failure: those count toward the budget
of every later round, whose gradients passed there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hseed
from hypothesis.errors import Flaky

from verigrad.analytic import Derivation
from verigrad.checks.report import Point, Report, Status
from verigrad.checks.search.coverage import Coverage
from verigrad.checks.search.database import Entry
from verigrad.checks.search.points import SEED_MAX, KinksError, draw_points, seeds, sizes_strategy

__all__ = ["VALUES_ALONE", "VALUES_PER_SIZE", "Outcome", "Round", "explore", "shows_failure"]

#: Points drawn at each example's sizes. Checked as one stack (checks/verdict/stacked.py), 16 points cost
#: about what two checked alone do, and each size is tried on as many random values.
VALUES_PER_SIZE = 16
#: Points drawn at each example's sizes for a forward that runs under NumPy only: nothing stacks them, each
#: costs its own forward calls (one per entry for the complex step, several for finite differences), so 16 cost
#: 16 times one. Two keep a second draw of the values at every size (a kink, a tie, a cancellation that one draw
#: hits and the other misses) for an eighth of the cost; the sizes are as many as ever.
VALUES_ALONE = 2


def values_per_size(derivation: Derivation) -> int:
    """The points of one example: VALUES_PER_SIZE where they are checked as one stack, VALUES_ALONE for a
    forward declared to run under NumPy only (checked one point at a time)."""
    return VALUES_ALONE if tuple(derivation.namespaces or ()) == ("numpy",) else VALUES_PER_SIZE

Progress = Callable[[str, int, int], None]
Checked = tuple[Point | Report, Report]


@dataclass(frozen=True)
class Round:
    """What one round searches: ``watched`` gradients (None: all, and any error of the derivation) over
    ``budget`` generated examples, after the ``known`` failures; ``draw`` gives a point or the error report
    of a kinks() that raised, ``check`` the reports of points of one size, in order."""

    derivation: Derivation
    seed: int | str  # the first round: the run's seed; each later one its own, drawn from it
    max_size: int | None
    include_kinks: bool
    budget: int
    known: Sequence[Entry]
    watched: frozenset[str] | None
    draw: Callable[[Mapping[str, int], int], Point | Report]
    check: Callable[[Sequence[Point]], Iterable[Report]]
    progress: Progress | None = None
    #: The rounds after the first take the top of each dim's range more often (thresholds.TOP_SIZE_SHARE): the
    #: gradients they watch passed where the first failure was found, and may be wrong only at the largest sizes.
    top: bool = False


def shows_failure(report: Report, watched: frozenset[str] | None) -> bool:
    """Whether ``report`` ends an example of a round watching ``watched``: a watched gradient did not pass, or
    the derivation could not be checked at all there."""
    if watched is None:
        return report.status != Status.PASS
    if report.status == Status.ERROR and not report.failures:
        return True
    return any(g.status != Status.PASS for g in report.gradients if g.param in watched)


class _Found(Exception):
    def __init__(self, point: Point | Report, report: Report) -> None:
        super().__init__(report.message)
        self.point, self.report = point, report


@dataclass
class _Tally:
    """What a round has checked: examples (shrinking included), points, the examples that passed before the
    first failure, and the last point and the first failing one, each with its report."""

    watched: frozenset[str] | None
    coverage: Coverage
    examples: int = 0
    points: int = 0
    passed_before: int = 0
    last: Checked | None = None
    first_bad: Checked | None = None
    current: Entry | None = None  # the example being checked
    #: Per watched gradient, the smallest example at which it failed (shrinking included): where the example
    #: the round reports passes for it, the next round tries this one first (explicit examples are not shrunk).
    failing_at: dict[str, Entry] = field(default_factory=dict)

    def seen(self, point: Point | Report, report: Report) -> None:
        """Count one checked point; one that shows a failure ends the example (raises _Found)."""
        self.points += 1
        self.last = (point, report)
        self.coverage.see(report, point if isinstance(point, Point) else None)
        if self.current is not None:
            for g in report.gradients:
                if g.status != Status.PASS and (self.watched is None or g.param in self.watched):
                    known = self.failing_at.get(g.param)
                    if known is None or _size(self.current) < _size(known):
                        self.failing_at[g.param] = self.current
        if shows_failure(report, self.watched):
            if self.first_bad is None:
                self.first_bad = (point, report)
            raise _Found(point, report) from None

    def passed(self) -> None:
        if self.first_bad is None:
            self.passed_before += 1


def _size(entry: Entry) -> int:
    """The sum of an example's sizes (its other inputs, hyperparameters and data, left out)."""
    return sum(v for v in entry[0].values() if isinstance(v, int) and not isinstance(v, bool))


@dataclass
class Outcome:
    """A round's result: ``found`` the smallest failing point and its report (None: none found; then ``last``
    is the last point checked), the counts, ``clean`` the generated examples that passed before the failure,
    the known failures that passed and those not tried, and a warning when the failure did not come back on
    hypothesis's replay (then ``found`` is the first failure seen)."""

    found: Checked | None
    last: Checked | None
    examples: int
    points: int
    clean: int
    known_passed: Sequence[Entry]
    known_untried: Sequence[Entry]
    flaky: str | None = None
    failing_at: Mapping[str, Entry] = field(default_factory=dict)


@functools.cache
def _settings(budget: int) -> settings:
    # hypothesis's own database stays off: the search keeps known failures itself (checks/search/database.py).
    return settings(
        max_examples=budget,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
    )


def _draw_example(rnd: Round, tally: _Tally, sizes: Mapping[str, int], point_seed: int) -> list[Point]:
    """The points of one example (``values_per_size``); one whose kinks() raised ends it as a failure."""
    every = [(point_seed + j) % (SEED_MAX + 1) for j in range(values_per_size(rnd.derivation))]
    try:
        return draw_points(rnd.derivation, sizes, every, include_kinks=rnd.include_kinks)
    except KinksError:
        pass  # draw them one at a time: the first that raised is the example's failure
    points = []
    for s in every:
        point = rnd.draw(sizes, s)
        if isinstance(point, Report):
            tally.seen(point, point)
        points.append(point)
    return points


def _property(rnd: Round, tally: _Tally) -> Callable[[], None]:
    """The hypothesis test of one round, seeded with its seed; ``known`` failures are tried first, in order."""
    derivation = rnd.derivation

    def one_example(sizes: dict[str, int], point_seed: int) -> None:
        tally.examples += 1
        tally.current = (dict(sizes), point_seed)
        points = _draw_example(rnd, tally, sizes, point_seed)
        for point, report in zip(points, rnd.check(points), strict=False):
            tally.seen(point, report)
        tally.passed()
        if rnd.progress is not None:
            rnd.progress(derivation.name, tally.examples, rnd.budget)

    test = given(sizes=sizes_strategy(derivation, rnd.max_size, rnd.top), point_seed=seeds())(one_example)
    for sizes, point_seed in reversed(rnd.known):  # hypothesis tries explicit examples last-added first
        test = example(sizes=sizes, point_seed=point_seed)(test)
    return hseed(rnd.seed)(_settings(rnd.budget)(test))


def explore(rnd: Round, coverage: Coverage) -> Outcome:
    """Run one round; every point it checks is counted in ``coverage``."""
    tally = _Tally(rnd.watched, coverage)
    try:
        _property(rnd, tally)()
    except _Found as found:
        return _outcome(rnd, tally, (found.point, found.report))
    except Flaky as e:
        # The failure did not come back when hypothesis replayed it: the first one seen is reported.
        flaky = f"the failure did not reproduce on replay ({type(e).__name__}); the forward may be nondeterministic"
        return _outcome(rnd, tally, tally.first_bad or tally.last, flaky)
    return _outcome(rnd, tally, None)


def _outcome(rnd: Round, tally: _Tally, found: Checked | None, flaky: str | None = None) -> Outcome:
    """The known failures are the first examples tried, each once (explicit examples are not shrunk): those
    before the failure passed, those after it were not tried, and none of them is a generated example."""
    known, n = rnd.known, tally.examples
    passed = known[: max(0, n - 1)] if found is not None else known
    clean = max(0, tally.passed_before - len(known))
    return Outcome(found, tally.last, n, tally.points, clean, passed, known[n:], flaky, dict(tally.failing_at))
