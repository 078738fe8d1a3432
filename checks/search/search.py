"""Property-based search for a counterexample per gradient, shrunk by hypothesis to the smallest sizes.

The search runs in rounds (checks/search/explore.py). The first looks for any failure: hypothesis shrinks
the first example that does not pass to the smallest that still fails, and the derivation is reported
there, the point whose sizes and seed replay it exactly (checks/search/replay.py). A gradient that passed
at that point may still be wrong elsewhere, so the search goes on for the gradients that still pass, over
what is left of the budget they would have had alone: each round watches those gradients only, and each
gradient found failing is reported at its own smallest counterexample, with its own figures, diagnosis and
replay. Known failures are tried first (checks/search/database.py). A gradient that no point judged (its
reference 0 or underflowing everywhere) is an error, not a pass (checks/search/coverage.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from verigrad.analytic import Derivation, flat_at, flat_grad_output
from verigrad.checks.diagnose import diagnose, join_slips, locate_slips
from verigrad.checks.limits import DerivationTimeout, largest_sizes, memory_problem, time_limit
from verigrad.checks.report import Diagnosis, GradientReport, Kind, Mode, Point, Problem, Report, Status
from verigrad.checks.search.coverage import Coverage, carry_warnings, mark_unjudged
from verigrad.checks.search.database import Entry, KnownFailures, known_failures, wanted
from verigrad.checks.search.explore import VALUES_PER_SIZE, Outcome, Round, explore
from verigrad.checks.search.higher import higher_orders, search_points, wants_higher
from verigrad.checks.search.inputs import bound_for, counterexample_of, free_sizes, point_inputs, show_inputs, spec_of
from verigrad.checks.search.points import KinksError, bind_at, draw_point, grad_output_shape, scalar_notes
from verigrad.checks.search.replay import check_replay, replay_command
from verigrad.checks.search.usercode import raised_in_user_code, source_location
from verigrad.checks.verdict import choose_mode, evaluate, evaluate_group, evaluate_projection
from verigrad.reference import keeps_generators, seeded_at

__all__ = ["CONFIRM_EXAMPLES", "DEFAULT_EXAMPLES", "MODES", "VALUES_PER_SIZE", "Method", "check", "check_points", "safe_evaluate"]

#: Examples (sizes drawn by hypothesis) tried by default per derivation.
DEFAULT_EXAMPLES = 30
#: Further examples at the counterexample's sizes that a diagnosis must be confirmed on.
CONFIRM_EXAMPLES = 4

Progress = Callable[[str, int, int], None]
MODES = tuple(m.value for m in Mode)


@dataclass(frozen=True)
class Method:
    """How each point is checked: ``mode`` exhaustive, projection or auto (by size); autograd's ``device``;
    ``noise``: measure the rounding noise σ where no verdict needs it (a diagnosis reads it)."""

    mode: str = Mode.AUTO
    device: str = "cpu"
    progress: Progress | None = field(default=None, compare=False)
    noise: bool = False


def evaluate_point(derivation: Derivation, point: Point, how: Method = Method()) -> Report:
    derivation = bound_for(derivation, point)  # with the point's hyperparameters, data and seed (checks/search/inputs.py)
    mode = choose_mode(derivation, point) if how.mode == Mode.AUTO else how.mode
    if mode == Mode.PROJECTION:
        return evaluate_projection(derivation, point, device=how.device)
    return evaluate(derivation, point, device=how.device, progress=how.progress, noise=how.noise)


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
    derivation = bound_for(derivation, points[0]) if points else derivation  # the points of one example share it
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

    def replay(self, point: Point) -> str:
        """The command that replays ``point`` as this run checked it: its mode, kinks and device carried."""
        how = {"mode": self.how.mode, "include_kinks": self.include_kinks, "device": self.how.device}
        return replay_command(self.derivation, self.target, spec_of(point), point.seed, **how)

    def refuse(self, message: str) -> Report:
        return Report(name=self.derivation.name, status=Status.ERROR, message=message, target=self.target, seed=self.seed)

    def draw(self, sizes: Mapping[str, int], seed: int) -> Point | Report:
        """The point at ``sizes`` from ``seed``, or the error report if the derivation's kinks() raised."""
        try:
            return draw_point(self.derivation, sizes, seed, include_kinks=self.include_kinks)
        except KinksError as e:
            message = f"kinks raised {_what(e)}"
            shapes = free_sizes(self.derivation, sizes)
            return Report(name=self.derivation.name, status=Status.ERROR, shapes=shapes, point_seed=seed, message=message)

    def round(self, seed: int | str, budget: int, known: Sequence[Entry], watched: frozenset[str] | None) -> Round:
        """A round of the search (checks/search/explore.py) that checks points as this run does."""
        d = self.derivation
        check = lambda points: check_points(d, points, self.how)
        top = watched is not None
        return Round(d, seed, self.max_size, self.include_kinks, budget, known, watched, self.draw, check, self.how.progress, top)


def _diagnose(run: Run, point: Point, report: Report, failing: Sequence[GradientReport]) -> None:
    """Attach a diagnosis to each of the ``failing`` gradients of ``report``, confirmed on more examples at
    ``point``'s sizes."""
    derivation = bound_for(run.derivation, point)
    evidence = [(point, report)]
    base = point.seed if point.seed is not None else 0
    for k in range(1, CONFIRM_EXAMPLES + 1):
        other = draw_point(derivation, point.sizes, (base + k) % 2**32, include_kinks=run.include_kinks)
        evidence.append((other, safe_evaluate(derivation, other, replace(run.how, noise=True))))
    for _, r in evidence:
        carry_warnings(report, r)
    with seeded_at(point.seed):  # the global generators as at the counterexample (reference/_global_rng.py)
        _diagnose_failing(derivation, point, evidence, failing)


def _diagnose_failing(derivation: Derivation, point: Point, evidence: list[tuple[Point, Report]], failing: Sequence[GradientReport]) -> None:
    for g in failing:
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
    locate_slips(derivation, point, failing)  # the first wrong line of the derivation (checks/diagnose/slip.py)


def _found_at(run: Run, point: Point, failing: Sequence[GradientReport]) -> str | None:
    """Each of the ``failing`` gradients found at ``point`` gets it as its counterexample; the replay command."""
    if point.seed is None:
        return None
    replay = run.replay(point)
    for g in failing:
        g.counterexample = {**counterexample_of(point), "replay": replay}
    return replay


def _finish(run: Run, report: Report, point: Point, counts: tuple[int, int]) -> Report:
    """The report as the search gives it; ``counts``: (examples, points) checked."""
    report.seed = run.seed
    report.examples, report.points = counts
    report.replay = _found_at(run, point, report.failures)
    report.target = run.target
    show_inputs(report, point)
    if report.status == Status.FAIL:
        if point.seed is not None:
            report.counterexample = counterexample_of(point)
        _diagnose(run, point, report, report.failures)
        join_slips(report)
    report.duration_s = time.perf_counter() - run.started
    return report


@keeps_generators
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
    """Check ``derivation``: at one point (``at``, a dict of arrays or a ``draw_point`` Point), or by property-based search.

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
    at = given_as_mapping(at) if isinstance(at, Point) else at
    try:
        with time_limit(timeout):
            if at is not None:
                report = _at_point(run, at)
            elif replay is not None:
                report = _replay(run, *replay)
            else:
                report = _search(run, DEFAULT_EXAMPLES if examples is None else examples, use_database)
            if wants_higher(derivation) and report.status != Status.ERROR:
                _higher_orders(run, report, at, replay)
    except DerivationTimeout as e:
        report = Report(
            name=derivation.name,
            status=Status.ERROR,
            seed=seed,
            target=target,
            message=f"{e} (the time limit per derivation; raise it with --timeout)",
            duration_s=time.perf_counter() - started,
        )
    report.location = source_location(derivation)
    return report


def given_as_mapping(point: Point) -> dict[str, Any]:
    """A Point (``draw_point``'s) as ``check(d, at=...)`` takes one: its parameters, grad_output, hyperparameters,
    data and the seed handed to a seeded forward."""
    out: dict[str, Any] = {**point.params, **point.hyper, **point.data}
    if point.grad_output is not None:
        out["grad_output"] = point.grad_output
    if point.forward_seed is not None:
        out["seed"] = point.forward_seed
    return out


def _given_point(run: Run, at: Mapping[str, Any]) -> tuple[Derivation, Point] | Report:
    """The point the caller gave (a layer without ``grad_output`` gets one drawn from the run's seed)."""
    if not isinstance(at, Mapping):
        return run.refuse(f"at= takes a dict of the parameters' arrays (or a Point from draw_point), not a {type(at).__name__}")
    try:
        at = flat_grad_output(run.derivation, flat_at(run.derivation, at))  # structured parameters, grad_output as leaves
        derivation, arrays, sizes = bind_at(run.derivation, at)  # data, hyperparameters and seed taken out of at
    except ValueError as e:
        return run.refuse(str(e))
    g = arrays.pop("grad_output", None)
    params = {k: np.asarray(v) for k, v in arrays.items()}
    if derivation.is_layer and g is None:
        g = np.random.default_rng(run.seed or 0).standard_normal(grad_output_shape(derivation, sizes, params))
    notes = scalar_notes(run.derivation, sizes, derivation, params)
    return derivation, Point(sizes=sizes, params=params, grad_output=g, notes=notes, **point_inputs(derivation))


def _at_point(run: Run, at: Mapping[str, Any]) -> Report:
    """One point the caller gave."""
    given = _given_point(run, at)
    if isinstance(given, Report):
        return given
    derivation, point = given
    return _finish(run, safe_evaluate(derivation, point, run.how), point, (1, 1))


def _higher_orders(run: Run, report: Report, at: Mapping[str, Any] | None, replay: tuple[Mapping[str, int], int] | None) -> None:
    """A derivation's hand-derived H·v and J·v, judged at the check's point(s) (checks/search/higher.py)."""
    d = run.derivation
    if at is not None:
        given = _given_point(run, at)
        points = [] if isinstance(given, Report) else [given[1]]
    elif replay is not None:
        points = [p for p in [run.draw(dict(replay[0]), replay[1])] if isinstance(p, Point)]
    else:
        points = search_points(report, run.seed or 0, run.draw, d)
    if at is not None or replay is not None:  # the report is the first order's verdict at that very point
        trusted = lambda p: report.status == Status.PASS
    else:
        trusted = lambda p: safe_evaluate(d, p, run.how).status == Status.PASS
    higher_orders(d, report, points, trusted, run.replay, seed=run.seed or 0, device=run.how.device)


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


def _drawable(derivation: Derivation, max_size: int | None, entries: Sequence[Entry]) -> list[Entry]:
    """The saved failures this search could draw itself (``max_size`` may rule some out for this run)."""
    top = largest_sizes(derivation, max_size)
    return [e for e in entries if all(e[0][d] <= n for d, n in top.items())]


def _search(run: Run, budget: int, use_database: bool) -> Report:
    derivation = run.derivation
    too_big = memory_problem(derivation, largest_sizes(derivation, run.max_size), "the largest point the search may draw")
    if too_big:
        return run.refuse(too_big)
    store = known_failures(derivation, run.target) if use_database else None
    known = _drawable(derivation, run.max_size, store.entries()) if store is not None else []
    coverage = Coverage()
    first = explore(run.round(run.seed, budget, known, None), coverage)
    point, report = first.found or first.last
    if first.flaky is None:
        _remember(store, first)
    if isinstance(point, Report):
        return point
    if first.flaky is not None:
        report.warnings.append(first.flaky)
    report = _finish(run, report, point, (first.examples, first.points))
    if report.status == Status.FAIL:
        _go_on(run, report, Budget(budget - first.clean, _seen_failing(report, first), store), coverage)
        join_slips(report)
    _show_most_demanding(run, report, coverage)
    carry_warnings(report, coverage)
    if report.status != Status.ERROR:
        mark_unjudged(report, coverage)
    report.duration_s = time.perf_counter() - run.started
    return report


@dataclass
class Budget:
    """What the rounds after the first have left: generated examples, known failures not yet tried, the store."""

    examples: int
    known: Sequence[Entry]
    store: KnownFailures | None


def _go_on(run: Run, report: Report, left: Budget, coverage: Coverage) -> None:
    """After the first failure, further rounds for the gradients that still pass, each over the examples they
    have left (those that passed for them in earlier rounds count), until none passes, none is left, or a
    round finds no failure; each gradient found failing replaces its entry in ``report``."""
    watched = frozenset(g.param for g in report.gradients if g.status == Status.PASS)
    rounds = 1
    try:
        while watched and left.examples > 0:
            rounds += 1
            out = explore(run.round(f"{run.seed}.{rounds}", left.examples, left.known, watched), coverage)
            report.examples += out.examples
            report.points += out.points
            if out.found is None:
                return
            left.examples -= out.clean
            found = _adopt(run, report, watched, out, left.store)
            if not found:
                return
            watched -= found
            left.known = _seen_failing(report, out)
    except DerivationTimeout as e:  # the failures found stand; the time limit cut the search for the others short
        report.warnings.append(f"the search went on for {_names(report, watched)} after the first failure and {e} (the time limit per derivation)")


def _seen_failing(report: Report, out: Outcome) -> list[Entry]:
    """The next round's first examples: where a gradient that still passes in ``report`` failed during ``out``
    (an example shrinking left behind: the point reported shows another gradient's failure), then the known
    failures ``out`` did not try."""
    passing = {g.param for g in report.gradients if g.status == Status.PASS}
    seen = [entry for param, entry in out.failing_at.items() if param in passing]
    unique = [e for i, e in enumerate(seen) if e not in seen[:i]]
    return [*unique, *(e for e in out.known_untried if e not in unique)]


def _names(report: Report, params: frozenset[str]) -> str:
    return ", ".join(f"∂f/∂{g.param}" for g in report.gradients if g.param in params)


def _adopt(run: Run, report: Report, watched: frozenset[str], out: Outcome, store: KnownFailures | None) -> frozenset[str]:
    """The watched gradients that failed at a later round's point, diagnosed there and put in ``report``;
    a point where the derivation could not be checked at all ends the search with a warning (empty result)."""
    point, found = out.found
    failing = [g for g in found.gradients if g.param in watched and g.status != Status.PASS]
    if isinstance(point, Report) or not failing:
        where = ", ".join(f"{k}={v}" for k, v in found.shapes.items())
        stop = f"stopped at {where} (point seed {found.point_seed}): {found.message}"
        report.warnings.append(f"the search went on for {_names(report, watched)} after the first failure and {stop}")
        return frozenset()
    if out.flaky is None and store is not None and point.seed is not None:
        store.save(spec_of(point), point.seed)
    for g in failing:
        if out.flaky is not None:
            g.warnings.append(out.flaky)
    _diagnose(run, point, found, failing)
    _found_at(run, point, failing)
    mine = {g.param: g for g in failing}
    report.gradients = [mine.get(g.param, g) for g in report.gradients]
    return frozenset(mine)


def _show_most_demanding(run: Run, report: Report, coverage: Coverage) -> None:
    """Each passing gradient of ``report`` as it was at the most demanding point the search judged it at, which
    it names (``figures_at``, with the command that replays it); failing gradients stay at their counterexample.
    Every gradient shown has σ measured: the figures a search reports do not depend on which verdicts needed it."""
    shown = []
    for g in report.gradients:
        best = coverage.most_demanding(g.param) if g.status == Status.PASS else None
        if best is None:
            shown.append(g if g.remeasure is None else g.remeasure() or g)  # the report's own point, σ measured
            continue
        kept, point = best
        if point is not None and point.seed is not None:
            replay = run.replay(point)
            kept.figures_at = {**counterexample_of(point), "replay": replay}
        shown.append(kept)
    report.gradients = shown


def _remember(store: KnownFailures | None, first: Outcome) -> None:
    """Forget the known failures that passed the first round (the first examples tried); save the one it reported."""
    if store is None:
        return
    for sizes, point_seed in first.known_passed:
        store.forget(sizes, point_seed)
    failure = first.found[1] if first.found is not None else None
    if failure is not None and failure.point_seed is not None:
        point = first.found[0]
        store.save(spec_of(point) if isinstance(point, Point) else failure.shapes, failure.point_seed)
