"""The one judgement (checks/verdict/judge.py): per entry, for k stacked points, the same as for each point alone."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

from verigrad import analytic
from verigrad.checks.report import Blame, Problem
from verigrad.checks.verdict import exact_tolerance, judge_point, judge_stack, thresholds
from verigrad.checks.verdict.judge import admit
from verigrad.reference import BatchedObjective, FDEstimate, finite_differences

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPE = (3, 4)
L = 7  # inner length of τ_ex
#: A clear disagreement: far above τ_ex (~1e-15 here) and above the finite-difference error e.
WRONG = 1e-3


def fd_of(value, error=1e-9, nondiff=None) -> FDEstimate:
    value = np.asarray(value, dtype=np.float64)
    nd = np.zeros(value.shape, bool) if nondiff is None else nondiff
    full = lambda v: np.full(value.shape, v)
    return FDEstimate(value=value, error=full(error), step=full(1e-5), nondifferentiable=nd, refined=np.zeros(value.shape, bool))


def case(kind: str, seed: int):
    """(analytic, autograd, finite-difference estimate, σ) at one point where entry (1, 2) is of ``kind``."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(SHAPE)
    a, d = t.copy(), t.copy()
    nd = np.zeros(SHAPE, bool)
    if kind == "analytic":
        a[1, 2] += WRONG
    elif kind == "graph":
        d[1, 2] += WRONG
    elif kind == "autograd":
        t[1, 2] += WRONG
    elif kind == "undetermined":
        a[1, 2] += WRONG
        d[1, 2] -= WRONG
    elif kind == "nan_autograd":
        t[1, 2] = np.nan
    elif kind == "nan_autograd_wrong":
        t[1, 2] = np.nan
        a[1, 2] += WRONG
    elif kind == "kink":
        a[1, 2] += WRONG  # another subgradient at a switch: not a failure
        nd[1, 2] = True
    sigma = np.full(SHAPE, 1e-17)
    return a, t, fd_of(d, nondiff=nd), sigma


KINDS = ["ok", "analytic", "graph", "autograd", "undetermined", "nan_autograd", "nan_autograd_wrong", "kink"]
EXPECT = {
    "ok": ("pass", None, 0),
    "analytic": ("fail", Blame.ANALYTIC, 1),
    "graph": ("fail", Blame.GRAPH, 1),  # analytic agrees with autograd only: judged against the function
    "autograd": ("pass", Blame.AUTOGRAD, 0),
    "undetermined": ("fail", Blame.UNDETERMINED, 1),
    "nan_autograd": ("pass", None, 0),
    "nan_autograd_wrong": ("fail", Blame.ANALYTIC, 1),
    "kink": ("pass", None, 0),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_entry_verdict_blames_the_witness_at_odds(kind):
    a, t, fd, sigma = case(kind, 0)
    g = judge_point("W", a, t, fd, sigma, L)
    assert (g.status, g.blame, g.mismatches) == EXPECT[kind]
    if g.mismatches:
        assert g.worst_index == (1, 2)
    if kind.startswith("nan_autograd"):
        assert g.decided_by_fd == [(1, 2)] and any("decided by finite differences" in w for w in g.warnings)
    if kind == "graph":
        assert g.decided_by_fd == [(1, 2)] and g.reference_value == fd.value[1, 2] and not g.warnings
    if kind == "kink":
        assert g.nondifferentiable == [(1, 2)] and any("convention" in w for w in g.warnings)


def test_a_stack_is_judged_as_each_of_its_points_alone():
    points = [case(kind, seed) for seed, kind in enumerate(KINDS)]
    a, t, sigma = (np.stack([p[i] for p in points]) for i in (0, 1, 3))
    fd = FDEstimate(*(np.stack([getattr(p[2], f) for p in points]) for f in ("value", "error", "step", "nondifferentiable", "refined")))
    together = judge_stack("W", a, t, fd, sigma, L)
    alone = [judge_point("W", *p[:3], p[3], L) for p in points]
    assert [g.to_dict() for g in together] == [g.to_dict() for g in alone]
    assert [g.status for g in together] == [EXPECT[k][0] for k in KINDS]


def test_tau_ex_counts_the_rounding_noise_of_differentiable_entries_only():
    ref = np.ones((2, 3))
    sigma = np.array([[1e-16, 1e-16, 1e-6], [1e-16, 1e-16, 1e-6]])
    differentiable = np.array([[True, True, False], [True, True, True]])
    tau = exact_tolerance(sigma, thresholds.U64, 4, ref, differentiable)
    size_term = thresholds.C_SIZE * thresholds.U64 * 2.0 + thresholds.TINY
    floor = thresholds.PRECISION_FLOOR_ULPS * thresholds.U64
    assert tau[0] == pytest.approx(max(thresholds.C_NOISE * 1e-16 + size_term, floor))  # the jump at the kink is not noise
    assert tau[1] == pytest.approx(thresholds.C_NOISE * 1e-6 + size_term)


def test_tau_ex_is_judged_at_the_precision_of_the_returned_gradient():
    a, t, fd, sigma = case("ok", 1)
    g64 = judge_point("W", a, t, fd, sigma, L)
    g32 = judge_point("W", a.astype(np.float32), t, fd, sigma, L)
    u32 = float(np.finfo(np.float32).eps) / 2
    assert g32.threshold["analytic_vs_autograd"] / g64.threshold["analytic_vs_autograd"] == pytest.approx(u32 / thresholds.U64, rel=1e-6)
    assert g32.status == "pass" and any("float32" in w for w in g32.warnings)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, Problem.MISSING),
        (np.zeros(SHAPE, complex), Problem.DTYPE),
        (np.zeros((4, 3)), Problem.SHAPE),
        (np.array(["x"] * 12).reshape(SHAPE), Problem.DTYPE),
    ],
    ids=["missing", "complex", "shape", "strings"],
)
def test_a_gradient_that_cannot_be_compared_is_refused_with_its_problem(value, problem):
    refused, _ = admit("W", value, SHAPE)
    assert refused is not None and refused.problem is problem and refused.blame is Blame.ANALYTIC


def test_an_integer_gradient_is_judged_as_float64_with_a_warning():
    refused, warnings = admit("W", np.zeros(SHAPE, np.int64), SHAPE)
    assert refused is None and warnings == ["gradient of W has integer dtype int64; judged as float64"]


def test_a_failing_progress_callback_is_not_taken_for_a_forward_that_does_not_vmap():
    """The callback is the caller's code, not the forward: its error must surface, not switch the run to NumPy."""
    d = analytic.builtin("linear_layer")
    sizes = {s: 3 for s in d.symbols}
    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(d.shape_of(n, sizes)) for n in d.params}
    g = rng.standard_normal(d.output_shape(sizes))
    # A budget that splits the first batched call by parameter, each one with its vmap probe riding along.
    total = sum(v.size for v in params.values()) + g.size
    largest = max(v.size for v in params.values())
    budget = 8 * (thresholds.INTERMEDIATE_FACTOR * total + largest) * (2 * largest + 1)
    assert 8 * thresholds.INTERMEDIATE_FACTOR * total * (2 * sum(v.size for v in params.values()) + 1) > budget
    calls = []

    def progress(done, planned):
        calls.append(done)
        raise TypeError("progress callback broke")

    ev = BatchedObjective(d, params, g, memory_budget=budget)
    with pytest.raises(TypeError, match="progress callback broke"):
        finite_differences(d, params, g, evaluator=ev, progress=progress)
    assert len(calls) == 1  # raised by the first batched call, which did not go on as a NumPy loop


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def test_nothing_outside_reference_reaches_into_its_private_modules():
    files = [*ROOT.glob("checks/**/*.py"), *ROOT.glob("tests/**/*.py")]
    offenders = [
        f"{f.relative_to(ROOT)}: {m}" for f in files for m in _imports(f) if m.startswith("verigrad.reference.") and m.split(".")[2].startswith("_")
    ]
    assert offenders == []


def test_reference_does_not_import_checks():
    offenders = [f"{f.relative_to(ROOT)}: {m}" for f in ROOT.glob("reference/*.py") for m in _imports(f) if m.startswith("verigrad.checks")]
    assert offenders == []


@pytest.mark.parametrize("folder", ["reference", "checks/verdict"])
def test_broad_excepts_guard_user_code_only(folder):
    """A broad handler says ``# user code`` where it guards the user's forward or gradients; anywhere else it would hide a harness bug."""
    unmarked = [
        f"{f.relative_to(ROOT)}:{i}"
        for f in (ROOT / folder).glob("*.py")
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if line.strip().startswith("except Exception") and "user code" not in line
    ]
    assert unmarked == []


def test_the_table_names_every_constant_it_reexports():
    from verigrad.reference import constants

    public = {n for n in vars(constants) if n.isupper()}
    assert public <= set(thresholds.__all__)
    assert all(getattr(thresholds, n) == getattr(constants, n) for n in public)


def test_a_gradient_whose_every_entry_is_at_a_kink_passes_without_a_figure_instead_of_crashing():
    """A one-entry ReLU at exactly 0: no entry is compared, so there is no max abs err to set against the floor."""
    from verigrad import Derivation, check

    relu = Derivation("relu_one", shapes={"x": (1,)}, forward=lambda xp, x: xp.sum(x * (x > 0)),
                      gradients=lambda x: {"x": (x > 0).astype(float)}, kinks=lambda xp, x: [x])
    report = check(relu, at={"x": np.array([0.0])})
    g = report.gradients[0]
    assert (report.status, g.status, g.max_abs_err, g.nondifferentiable) == ("pass", "pass", None, [(0,)])
