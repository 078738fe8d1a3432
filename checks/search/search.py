"""Property-based search for a counterexample, shrunk by hypothesis to the smallest sizes."""

from __future__ import annotations

import os
import secrets
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky

from verigrad.analytic import Derivation, builtin
from verigrad.checks.diagnose import diagnose
from verigrad.checks.limits import DerivationTimeout, largest_sizes, memory_problem, time_limit
from verigrad.checks.report import ERROR, FAIL, PASS, Diagnosis, Point, Problem, Report
from verigrad.checks.search.points import SEED_MAX, draw_point, infer_sizes, seeds, sizes_strategy
from verigrad.checks.verdict import choose_mode, evaluate, evaluate_group, evaluate_projection

#: Examples (sizes drawn by hypothesis) tried by default per derivation.
DEFAULT_EXAMPLES = 30
#: Points drawn at each example's sizes. Checked as one stack (checks/verdict/stacked.py), 16 points cost
#: about what two checked alone do, and each size is tried on as many random values.
VALUES_PER_SIZE = 16
#: Further examples at the counterexample's sizes that a diagnosis must be confirmed on.
CONFIRM_EXAMPLES = 4
#: Where hypothesis keeps failing examples so that a known failure is tried first next time.
DATABASE_DIR = os.path.join(".hypothesis", "verigrad")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Method:
    """How each point is checked: ``mode`` exhaustive, projection or auto (by size); autograd's ``device``."""

    mode: str = "auto"
    device: str = "cpu"
    progress: Progress | None = field(default=None, compare=False)


MODES = ("auto", "exhaustive", "projection")


def evaluate_point(derivation: Derivation, point: Point, how: Method = Method()) -> Report:
    mode = choose_mode(derivation, point) if how.mode == "auto" else how.mode
    if mode == "projection":
        return evaluate_projection(derivation, point, device=how.device)
    return evaluate(derivation, point, device=how.device, progress=how.progress)


def safe_evaluate(derivation: Derivation, point: Point, how: Method = Method()) -> Report:
    """evaluate_point(), with anything unforeseen the user's code does turned into one line, not a traceback."""
    try:
        return evaluate_point(derivation, point, how)
    except Exception as e:  # user code may fail in ways no check anticipated
        text = " ".join(str(e).split()) or "(no message)"
        return Report(
            name=derivation.name,
            status=ERROR,
            shapes=dict(point.sizes),
            point_seed=point.seed,
            examples=1,
            message=f"checking raised {type(e).__name__}: {text}",
        )


def check_points(derivation: Derivation, points: Sequence[Point], how: Method = Method()) -> Iterator[Report]:
    """safe_evaluate() at each point (all of one size), in order and lazily; exhaustive CPU checks of
    several points share their stacked references."""
    single = lambda p: safe_evaluate(derivation, p, how)
    if len(points) > 1 and how.device == "cpu" and how.mode != "projection":
        if how.mode == "exhaustive" or choose_mode(derivation, points[0]) == "exhaustive":
            yield from evaluate_group(derivation, points, single=single)
            return
    yield from map(single, points)


def _safe_draw(derivation: Derivation, sizes: Mapping[str, int], seed: int, include_kinks: bool) -> Point | Report:
    try:
        return draw_point(derivation, sizes, seed, include_kinks=include_kinks)
    except Exception as e:  # the derivation's kinks() is user code
        text = " ".join(str(e).split()) or "(no message)"
        return Report(name=derivation.name, status=ERROR, shapes=dict(sizes), point_seed=seed, message=f"kinks raised {type(e).__name__}: {text}")


class _Found(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__(report.message)
        self.report = report


def replay_spec(sizes: Mapping[str, int], seed: int) -> str:
    return ",".join([*(f"{k}={v}" for k, v in sizes.items()), f"seed={seed}"])


def parse_replay(spec: str) -> tuple[dict[str, int], int]:
    """``N=2,D=3,seed=7`` → ({"N": 2, "D": 3}, 7); ValueError with the offending part."""
    sizes: dict[str, int] = {}
    seed = None
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"--replay: expected DIM=SIZE or seed=N, got {part.strip()!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"--replay: {key} must be an integer, got {value!r}") from None
        if key == "seed":
            seed = number
        elif number < 1:
            raise ValueError(f"--replay: size of {key} must be >= 1, got {number}")
        else:
            sizes[key] = number
    if seed is None:
        raise ValueError("--replay: missing seed=N")
    return sizes, seed


def replay_command(derivation: Derivation, target: str | None, sizes: Mapping[str, int], seed: int) -> str:
    if target is None:
        try:
            target = derivation.name if builtin(derivation.name) is derivation else None
        except KeyError:
            target = None
    where = shlex.quote(target) if target else "<file.py>"
    pick = "" if target == derivation.name else f" --only {shlex.quote(derivation.name)}"
    return f"verigrad check {where}{pick} --replay {replay_spec(sizes, seed)}"


def _diagnose(derivation: Derivation, report: Report, point: Point, include_kinks: bool, how: Method) -> None:
    """Attach a diagnosis to every failing gradient, confirmed on more examples at the same sizes."""
    evidence = [(point, report)]
    base = point.seed if point.seed is not None else 0
    for k in range(1, CONFIRM_EXAMPLES + 1):
        other = draw_point(derivation, point.sizes, (base + k) % 2**32, include_kinks=include_kinks)
        evidence.append((other, safe_evaluate(derivation, other, how)))
    for g in report.failures:
        if g.message and g.problem not in (Problem.RAISED, Problem.SHAPE):
            # Not a numeric disagreement (a missing entry, a non-real dtype, NaN/inf): the message is the diagnosis.
            g.diagnosis = Diagnosis("unknown", g.message, {"reason": "invalid gradient"}, 1)
            continue
        try:
            g.diagnosis = diagnose(derivation, g.param, evidence)
        except Exception as e:  # the verdict stands even where the diagnosis cannot be made
            text = " ".join(str(e).split()) or "(no message)"
            g.diagnosis = Diagnosis("unknown", f"∂f/∂{g.param}: the diagnosis could not be made ({type(e).__name__}: {text})", {}, 0)


def _finish(derivation, report, point, target, include_kinks, seed, counts, started, how=Method()) -> Report:
    """The report as the search gives it; ``counts``: (examples, points) checked."""
    report.seed = seed
    report.examples, report.points = counts
    if point.seed is not None:
        report.replay = replay_command(derivation, target, point.sizes, point.seed)
    report.target = target
    if report.status == FAIL:
        if point.seed is not None:
            report.counterexample = {"shapes": dict(point.sizes), "seed": point.seed}
        _diagnose(derivation, report, point, include_kinks, how)
    report.duration_s = time.perf_counter() - started
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
    database: bool = True,
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
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    started = time.perf_counter()
    if seed is None and at is None and replay is None:
        seed = secrets.randbits(32)
    try:
        with time_limit(timeout):
            how = Method(mode, device, progress)
            return _check(derivation, at, examples, seed, include_kinks, replay, target, max_size, progress, database, started, how)
    except DerivationTimeout as e:
        return Report(
            name=derivation.name,
            status=ERROR,
            seed=seed,
            target=target,
            message=f"{e} (the time limit per derivation; raise it with --timeout)",
            duration_s=time.perf_counter() - started,
        )


def _check(derivation, at, examples, seed, include_kinks, replay, target, max_size, progress, database, started, how) -> Report:
    refuse = lambda message: Report(name=derivation.name, status=ERROR, message=message, target=target, seed=seed)
    if at is not None:
        arrays = dict(at)
        try:
            sizes = infer_sizes(derivation, arrays)
        except ValueError as e:
            return refuse(str(e))
        g = arrays.pop("grad_output", None)
        if derivation.is_layer and g is None:
            g = np.random.default_rng(seed or 0).standard_normal(derivation.output_shape(sizes))
        point = Point(sizes=sizes, params={k: np.asarray(v) for k, v in arrays.items()}, grad_output=g)
        return _finish(derivation, safe_evaluate(derivation, point, how), point, target, include_kinks, seed, (1, 1), started, how)
    if replay is not None:
        sizes, point_seed = replay
        missing = [d for d in derivation.symbols if d not in sizes]
        unknown = [d for d in sizes if d not in derivation.symbols]
        if missing or unknown:
            problem = f"no size for {', '.join(missing)}" if missing else f"unknown dim(s) {', '.join(unknown)}"
            return refuse(f"--replay: {problem}")
        too_big = memory_problem(derivation, sizes)
        if too_big:
            return refuse(too_big)
        point = _safe_draw(derivation, sizes, point_seed, include_kinks)
        if isinstance(point, Report):
            return point
        return _finish(derivation, safe_evaluate(derivation, point, how), point, target, include_kinks, seed, (1, 1), started, how)

    too_big = memory_problem(derivation, largest_sizes(derivation, max_size), "the largest point the search may draw")
    if too_big:
        return refuse(too_big)
    budget = DEFAULT_EXAMPLES if examples is None else examples
    state: dict[str, Any] = {"n": 0, "points": 0, "last": None, "first_bad": None}

    @settings(
        max_examples=budget,
        deadline=None,
        database=DirectoryBasedExampleDatabase(DATABASE_DIR) if database else None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
    )
    @given(sizes=sizes_strategy(derivation, max_size), point_seed=seeds())
    def prop(sizes: dict[str, int], point_seed: int) -> None:
        state["n"] += 1
        points = []
        for j in range(VALUES_PER_SIZE):
            point = _safe_draw(derivation, sizes, (point_seed + j) % (SEED_MAX + 1), include_kinks)
            if isinstance(point, Report):
                seen(point, point)
            points.append(point)
        for point, report in zip(points, check_points(derivation, points, how), strict=False):
            seen(point, report)
        if progress is not None:
            progress(derivation.name, state["n"], budget)

    def seen(point: Point | Report, report: Report) -> None:
        state["points"] += 1
        state["last"] = (point, report)
        if report.status != PASS:
            if state["first_bad"] is None:
                state["first_bad"] = (point, report)
            raise _Found(report) from None

    # One database entry per derivation, not one for every derivation checked by this function.
    prop._hypothesis_internal_add_digest = derivation.name.encode()  # type: ignore[attr-defined]
    try:
        hseed(seed)(prop)()
    except _Found as found:
        report = found.report
        point = _safe_draw(derivation, report.shapes, report.point_seed, include_kinks)
        if isinstance(point, Report):
            return point
        return _finish(derivation, report, point, target, include_kinks, seed, (state["n"], state["points"]), started, how)
    except Flaky as e:
        # The failure did not come back when hypothesis replayed it: report the first one seen.
        point, report = state["first_bad"] or state["last"]
        if isinstance(point, Report):
            return point
        report.warnings.append(f"the failure did not reproduce on replay ({type(e).__name__}); the forward may be nondeterministic")
        return _finish(derivation, report, point, target, include_kinks, seed, (state["n"], state["points"]), started, how)
    point, report = state["last"]
    if isinstance(point, Report):
        return point
    return _finish(derivation, report, point, target, include_kinks, seed, (state["n"], state["points"]), started, how)
