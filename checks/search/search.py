"""Property-based search for a counterexample, shrunk by hypothesis to the smallest sizes.

One hypothesis example is a set of sizes for the symbolic dims and a point seed s; the points drawn
from seeds s, s + 1, …, s + VALUES_PER_SIZE − 1 at those sizes are checked together
(checks/verdict/stacked.py). The first point that does not pass ends the example as a failure, and
hypothesis shrinks the sizes (and the seed) to the smallest example that still fails; the report is
taken at that point, whose sizes and seed replay it exactly (checks/search/replay.py). Known failures
are tried first (checks/search/database.py).
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hseed
from hypothesis.errors import Flaky

from verigrad.analytic import Derivation
from verigrad.checks.diagnose import diagnose
from verigrad.checks.limits import DerivationTimeout, largest_sizes, memory_problem, time_limit
from verigrad.checks.report import Diagnosis, Kind, Mode, Point, Problem, Report, Status
from verigrad.checks.search.database import Entry, KnownFailures, known_failures, wanted
from verigrad.checks.search.points import (
    SEED_MAX,
    KinksError,
    draw_point,
    draw_points,
    grad_output_shape,
    infer_sizes,
    seeds,
    sizes_strategy,
)
from verigrad.checks.search.replay import check_replay, replay_command
from verigrad.checks.search.usercode import raised_in_user_code
from verigrad.checks.verdict import choose_mode, evaluate, evaluate_group, evaluate_projection

__all__ = ["CONFIRM_EXAMPLES", "DEFAULT_EXAMPLES", "MODES", "VALUES_PER_SIZE", "Method", "check", "check_points", "safe_evaluate"]

#: Examples (sizes drawn by hypothesis) tried by default per derivation.
DEFAULT_EXAMPLES = 30
#: Points drawn at each example's sizes. Checked as one stack (checks/verdict/stacked.py), 16 points cost
#: about what two checked alone do, and each size is tried on as many random values.
VALUES_PER_SIZE = 16
#: Further examples at the counterexample's sizes that a diagnosis must be confirmed on.
CONFIRM_EXAMPLES = 4

Progress = Callable[[str, int, int], None]
MODES = tuple(m.value for m in Mode)


@dataclass(frozen=True)
class Method:
    """How each point is checked: ``mode`` exhaustive, projection or auto (by size); autograd's ``device``."""

    mode: str = Mode.AUTO
    device: str = "cpu"
    progress: Progress | None = field(default=None, compare=False)


def evaluate_point(derivation: Derivation, point: Point, how: Method = Method()) -> Report:
    mode = choose_mode(derivation, point) if how.mode == Mode.AUTO else how.mode
    if mode == Mode.PROJECTION:
        return evaluate_projection(derivation, point, device=how.device)
    return evaluate(derivation, point, device=how.device, progress=how.progress)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or "(no message)"


def _what(e: BaseException) -> str:
    """``Type: message`` of the user's exception (a KinksError's cause)."""
    user = e.__cause__ if isinstance(e, KinksError) and e.__cause__ is not None else e
    return f"{type(user).__name__}: {_one_line(user)}"


def safe_evaluate(derivation: Derivation, point: Point, how: Method = Method()) -> Report:
    """evaluate_point(), with a failure of the user's code that the verdict does not catch where it calls it
    (kinks() at a point the search did not draw, torch unable to differentiate the forward) turned into one
    line; any other exception is a harness bug and propagates."""
    try:
        return evaluate_point(derivation, point, how)
    except Exception as e:  # user code, told apart from harness bugs by raised_in_user_code
        if not raised_in_user_code(derivation, e):
            raise
        return Report(
            name=derivation.name,
            status=Status.ERROR,
            shapes=dict(point.sizes),
            point_seed=point.seed,
            examples=1,
            message=f"checking raised {_what(e)}",
        )


def check_points(derivation: Derivation, points: Sequence[Point], how: Method = Method()) -> Iterator[Report]:
    """safe_evaluate() at each point (all of one size), in order and lazily; exhaustive CPU checks of
    several points share their stacked references."""
    single = lambda p: safe_evaluate(derivation, p, how)
    if len(points) > 1 and how.device == "cpu" and how.mode != Mode.PROJECTION:
        if how.mode == Mode.EXHAUSTIVE or choose_mode(derivation, points[0]) == Mode.EXHAUSTIVE:
            yield from evaluate_group(derivation, points, single=single)
            return
    yield from map(single, points)


@dataclass(frozen=True)
class Run:
    """One check's options as check() was given them; ``seed`` is the run's (drawn when none was given)."""

    derivation: Derivation
    seed: int | None
    target: str | None
    include_kinks: bool
    max_size: int | None
    how: Method
    started: float

    def refuse(self, message: str) -> Report:
        return Report(name=self.derivation.name, status=Status.ERROR, message=message, target=self.target, seed=self.seed)

    def draw(self, sizes: Mapping[str, int], seed: int) -> Point | Report:
        """The point at ``sizes`` from ``seed``, or the error report if the derivation's kinks() raised."""
        try:
            return draw_point(self.derivation, sizes, seed, include_kinks=self.include_kinks)
        except KinksError as e:
            message = f"kinks raised {_what(e)}"
            return Report(name=self.derivation.name, status=Status.ERROR, shapes=dict(sizes), point_seed=seed, message=message)


class _Found(Exception):
    def __init__(self, point: Point | Report, report: Report) -> None:
        super().__init__(report.message)
        self.point, self.report = point, report


@dataclass
class Tally:
    """What the search has checked: examples (sizes, shrinking included) and points; the last point and
    the first that did not pass, each with its report."""

    examples: int = 0
    points: int = 0
    last: tuple[Point | Report, Report] | None = None
    first_bad: tuple[Point | Report, Report] | None = None

    def seen(self, point: Point | Report, report: Report) -> None:
        """Count one checked point; a point that does not pass ends the example (raises _Found)."""
        self.points += 1
        self.last = (point, report)
        if report.status != Status.PASS:
            if self.first_bad is None:
                self.first_bad = (point, report)
            raise _Found(point, report) from None

    @property
    def counts(self) -> tuple[int, int]:
        return self.examples, self.points


def _diagnose(run: Run, report: Report, point: Point) -> None:
    """Attach a diagnosis to every failing gradient, confirmed on more examples at the same sizes."""
    derivation = run.derivation
    evidence = [(point, report)]
    base = point.seed if point.seed is not None else 0
    for k in range(1, CONFIRM_EXAMPLES + 1):
        other = draw_point(derivation, point.sizes, (base + k) % 2**32, include_kinks=run.include_kinks)
        evidence.append((other, safe_evaluate(derivation, other, run.how)))
    for g in report.failures:
        if g.problem not in (None, Problem.RAISED, Problem.SHAPE):
            # Not a numeric disagreement (a missing entry, a non-real dtype, NaN/inf): the message is the diagnosis.
            g.diagnosis = Diagnosis(Kind.UNKNOWN, g.message, {"reason": "invalid gradient"}, 1)
            continue
        try:
            g.diagnosis = diagnose(derivation, g.param, evidence)
        except Exception as e:  # user code failed on a diagnosis's point: the verdict stands (a harness bug propagates)
            if not raised_in_user_code(derivation, e):
                raise
            g.diagnosis = Diagnosis(Kind.UNKNOWN, f"∂f/∂{g.param}: the diagnosis could not be made ({_what(e)})", {}, 0)


def _finish(run: Run, report: Report, point: Point, counts: tuple[int, int]) -> Report:
    """The report as the search gives it; ``counts``: (examples, points) checked."""
    report.seed = run.seed
    report.examples, report.points = counts
    if point.seed is not None:
        report.replay = replay_command(run.derivation, run.target, point.sizes, point.seed)
    report.target = run.target
    if report.status == Status.FAIL:
        if point.seed is not None:
            report.counterexample = {"shapes": dict(point.sizes), "seed": point.seed}
        _diagnose(run, report, point)
    report.duration_s = time.perf_counter() - run.started
    return report


def check(
    derivation: Derivation,
    at: Mapping[str, Any] | None = None,
    examples: int | None = None,
    seed: int | None = None,
    *,
    include_kinks: bool = False,
    replay: tuple[Mapping[str, int], int] | None = None,
    target: str | None = None,
    max_size: int | None = None,
    progress: Progress | None = None,
    database: bool | None = None,
    timeout: float | None = None,
    device: str = "cpu",
    mode: str = "auto",
) -> Report:
    """Check ``derivation``: at one point (``at``, a dict of arrays), or by property-based search.

    The search draws sizes for the symbolic dims and a seed for the values; on a failure
    hypothesis shrinks to the smallest sizes that still fail, and the report is taken there.
    ``replay=(sizes, point_seed)`` re-checks exactly one reported point. ``timeout`` (seconds)
    bounds the whole check; past it the report says so and the caller goes on. ``device`` runs
    the autograd reference there (e.g. ``"cuda"``); everything else stays on the CPU. ``mode``:
    ``exhaustive`` differences every entry, ``projection`` confirms autograd along random directions
    (for large inputs), ``auto`` picks by size.

    Without ``seed`` one is drawn at random and reported (``Report.seed``); the same seed replays the
    search. The example database (``.hypothesis/verigrad`` in the working directory, one key per
    derivation and ``target``) makes a failure found on one run the first example tried on the next:
    with ``database=None`` (the default) it is read and written when no ``seed`` is given, so a seeded
    run stays reproducible; ``database=True`` uses it with a seed too (for a caller that drew the seed
    itself and printed it: then the seed replays the run whenever no saved failure is involved);
    ``database=False`` neither reads nor writes it. It is off whenever ``CI`` is set.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    started = time.perf_counter()
    searching = at is None and replay is None
    use_database = searching and wanted(database, seed)
    if seed is None and searching:
        seed = secrets.randbits(32)
    run = Run(derivation, seed, target, include_kinks, max_size, Method(mode, device, progress), started)
    try:
        with time_limit(timeout):
            if at is not None:
                return _at_point(run, at)
            if replay is not None:
                return _replay(run, *replay)
            return _search(run, DEFAULT_EXAMPLES if examples is None else examples, progress, use_database)
    except DerivationTimeout as e:
        return Report(
            name=derivation.name,
            status=Status.ERROR,
            seed=seed,
            target=target,
            message=f"{e} (the time limit per derivation; raise it with --timeout)",
            duration_s=time.perf_counter() - started,
        )


def _at_point(run: Run, at: Mapping[str, Any]) -> Report:
    """One point the caller gave (a layer without ``grad_output`` gets one drawn from the run's seed)."""
    derivation, arrays = run.derivation, dict(at)
    try:
        sizes = infer_sizes(derivation, arrays)
    except ValueError as e:
        return run.refuse(str(e))
    g = arrays.pop("grad_output", None)
    params = {k: np.asarray(v) for k, v in arrays.items()}
    if derivation.is_layer and g is None:
        g = np.random.default_rng(run.seed or 0).standard_normal(grad_output_shape(derivation, sizes, params))
    point = Point(sizes=sizes, params=params, grad_output=g)
    return _finish(run, safe_evaluate(derivation, point, run.how), point, (1, 1))


def _replay(run: Run, sizes: Mapping[str, int], point_seed: int) -> Report:
    """Exactly the point a report named: drawn again at ``sizes`` from ``point_seed``."""
    derivation = run.derivation
    try:
        check_replay(derivation, sizes)
    except ValueError as e:
        return run.refuse(str(e))
    too_big = memory_problem(derivation, sizes)
    if too_big:
        return run.refuse(too_big)
    point = run.draw(sizes, point_seed)
    if isinstance(point, Report):
        return point
    return _finish(run, safe_evaluate(derivation, point, run.how), point, (1, 1))


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


def _draw_example(run: Run, tally: Tally, sizes: Mapping[str, int], point_seed: int) -> list[Point]:
    """The VALUES_PER_SIZE points of one example; one whose kinks() raised ends it as a failure."""
    every = [(point_seed + j) % (SEED_MAX + 1) for j in range(VALUES_PER_SIZE)]
    try:
        return draw_points(run.derivation, sizes, every, include_kinks=run.include_kinks)
    except KinksError:
        pass  # draw them one at a time: the first that raised is the example's failure
    points = []
    for s in every:
        point = run.draw(sizes, s)
        if isinstance(point, Report):
            tally.seen(point, point)
        points.append(point)
    return points


def _property(run: Run, tally: Tally, budget: int, progress: Progress | None, known: Sequence[Entry]) -> Callable[[], None]:
    """The hypothesis test of the search, seeded with the run's seed; ``known`` failures are tried first, in order."""
    derivation = run.derivation

    def one_example(sizes: dict[str, int], point_seed: int) -> None:
        tally.examples += 1
        points = _draw_example(run, tally, sizes, point_seed)
        for point, report in zip(points, check_points(derivation, points, run.how), strict=False):
            tally.seen(point, report)
        if progress is not None:
            progress(derivation.name, tally.examples, budget)

    test = given(sizes=sizes_strategy(derivation, run.max_size), point_seed=seeds())(one_example)
    for sizes, point_seed in reversed(known):  # hypothesis tries explicit examples last-added first
        test = example(sizes=sizes, point_seed=point_seed)(test)
    return hseed(run.seed)(_settings(budget)(test))


def _drawable(derivation: Derivation, max_size: int | None, entries: Sequence[Entry]) -> list[Entry]:
    """The saved failures this search could draw itself (``max_size`` may rule some out for this run)."""
    top = largest_sizes(derivation, max_size)
    return [e for e in entries if all(n <= top[d] for d, n in e[0].items())]


def _search(run: Run, budget: int, progress: Progress | None, use_database: bool) -> Report:
    derivation = run.derivation
    too_big = memory_problem(derivation, largest_sizes(derivation, run.max_size), "the largest point the search may draw")
    if too_big:
        return run.refuse(too_big)
    store = known_failures(derivation, run.target) if use_database else None
    known = _drawable(derivation, run.max_size, store.entries()) if store is not None else []
    tally = Tally()
    try:
        _property(run, tally, budget, progress, known)()
    except _Found as found:
        _remember(store, known, tally, found.report)
        if isinstance(found.point, Report):
            return found.point
        return _finish(run, found.report, found.point, tally.counts)
    except Flaky as e:
        # The failure did not come back when hypothesis replayed it: report the first one seen.
        point, report = tally.first_bad or tally.last
        if isinstance(point, Report):
            return point
        report.warnings.append(f"the failure did not reproduce on replay ({type(e).__name__}); the forward may be nondeterministic")
        return _finish(run, report, point, tally.counts)
    _remember(store, known, tally, None)
    point, report = tally.last
    if isinstance(point, Report):
        return point
    return _finish(run, report, point, tally.counts)


def _remember(store: KnownFailures | None, known: Sequence[Entry], tally: Tally, failure: Report | None) -> None:
    """Forget the known failures that passed this run (the first examples tried); save the one reported."""
    if store is None:
        return
    passed = known if failure is None else known[: max(0, tally.examples - 1)]
    for sizes, point_seed in passed:
        store.forget(sizes, point_seed)
    if failure is not None and failure.point_seed is not None:
        store.save(failure.shapes, failure.point_seed)
