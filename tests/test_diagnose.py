"""The diagnosis gate: each wrong derivation in tests/mutants fails with the expected kind; equivalent ones pass."""

import importlib
import pkgutil
from functools import cache

import numpy as np
import pytest

import tests.mutants
from tests.mutants._objectives import CORRECT
from verigrad import checks
from verigrad.analytic import Derivation
from verigrad.checks.diagnose import diagnose, table
from verigrad.checks.diagnose.evidence import needed
from verigrad.checks.report import Diagnosis, Kind
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import evaluate
from verigrad.checks.verdict.thresholds import CLAIM_MAJORITY

#: Search budget per derivation: every slip in the corpus shows within a handful of examples.
EXAMPLES = 20
#: One fixed seed: the gate is deterministic (STYLE rule 12).
SEED = 1234
#: The kinds the corpus must cover, each on at least this many different objectives.
KINDS = ("sign_flip", "scale", "transpose", "kept_axis", "missing_batch_sum", "missing_sum", "shape_mismatch", "jacobian_diagonal", "subsample",
         "assignment", "truncation", "partial", "raised", "unknown")
MIN_OBJECTIVES_PER_KIND = 2
#: Factor comparisons: the diagnosis names factors exactly up to rounding of a least-squares fit.
FACTOR_RTOL = 1e-9
#: "Smallest counterexample": a transposed ∂f/∂W must be reported with every dim at most this size.
SMALL = 2

MODULES = [
    importlib.import_module(f"tests.mutants.{m.name}")
    for m in pkgutil.iter_modules(tests.mutants.__path__)
    if not m.name.startswith("_")
]
DERIVATIONS = {d.name: d for mod in MODULES for k, d in vars(mod).items() if isinstance(d, Derivation) and not k.startswith("_")}
CASES = [(name, param, kind, details) for mod in MODULES for name, per in mod.EXPECT.items() for param, (kind, details) in per.items()]
EQUIVALENTS = [name for mod in MODULES for name in mod.EQUIVALENT]


@cache
def run(name: str) -> checks.Report:
    return checks.check(DERIVATIONS[name], examples=EXAMPLES, seed=SEED, database=False)


def gradient(report: checks.Report, param: str) -> checks.GradientReport:
    return next(g for g in report.gradients if g.param == param)


def test_every_mutant_has_an_expectation():
    expected = {name for mod in MODULES for name in mod.EXPECT} | set(EQUIVALENTS)
    assert set(DERIVATIONS) == expected


def test_corpus_covers_every_kind_on_different_objectives():
    objectives: dict[str, set] = {k: set() for k in KINDS}
    for name, _param, kind, _ in CASES:
        objectives[kind].add(DERIVATIONS[name].forward)
    thin = {k: len(v) for k, v in objectives.items() if len(v) < MIN_OBJECTIVES_PER_KIND}
    assert not thin, f"kinds with too few objectives: {thin}"


@pytest.mark.parametrize(("name", "param", "kind", "details"), CASES, ids=[f"{n}-{p}" for n, p, _, _ in CASES])
def test_mutant_is_diagnosed(name, param, kind, details):
    report = run(name)
    g = gradient(report, param)
    assert report.status == "fail" and g.status == "fail", f"{name}: {report.message}"
    d = g.diagnosis
    assert d is not None
    assert isinstance(d.kind, Kind) and d.kind == kind, d.sentence
    for key, expected in details.items():
        want = expected(report.shapes) if callable(expected) else expected
        got = d.details.get(key)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=FACTOR_RTOL), d.sentence
        else:
            assert got == want, d.sentence
    assert d.sentence and "\n" not in d.sentence and d.sentence.startswith(("∂f/∂" + param, "the gradient function raised"))
    assert 1 <= d.confirmed_on <= 1 + checks.search.search.CONFIRM_EXAMPLES


@pytest.mark.parametrize("name", EQUIVALENTS)
def test_equivalent_rewrite_passes(name):
    report = run(name)
    assert report.status == "pass", report.message


@pytest.mark.parametrize("derivation", CORRECT, ids=[d.name for d in CORRECT])
def test_objectives_the_mutants_build_on_are_right(derivation):
    report = checks.check(derivation, examples=EXAMPLES, seed=SEED, database=False)
    assert report.status == "pass", report.message


# --- the reported numbers belong to the reported (smallest) counterexample ------------------------------


def test_transposed_dW_is_reported_at_small_sizes():
    report = run("rr_dW_transposed")
    assert report.counterexample is not None
    assert max(report.shapes.values()) <= SMALL, report.shapes


@pytest.mark.parametrize(("name", "param"), [("rr_dW_transposed", "W"), ("mean_sq_no_mean", "W"), ("gate_no_mask", "A")])
def test_replay_reproduces_the_reported_numbers(name, param):
    report = run(name)
    sizes, seed = report.counterexample["shapes"], report.counterexample["seed"]
    again = checks.check(DERIVATIONS[name], replay=(sizes, seed))
    g, h = gradient(report, param), gradient(again, param)
    assert (h.worst_index, h.analytic_value, h.reference_value, h.max_abs_err) == (g.worst_index, g.analytic_value, g.reference_value, g.max_abs_err)
    assert h.diagnosis.kind == g.diagnosis.kind
    assert h.diagnosis.details.get("scale_factor") == g.diagnosis.details.get("scale_factor")


def test_scale_factor_is_the_ratio_at_the_reported_worst_entry():
    report = run("mse_missing_mean")
    g = gradient(report, "W2")
    factor = g.diagnosis.details["scale_factor"]
    assert factor == pytest.approx(report.shapes["N"] * report.shapes["D_out"], rel=FACTOR_RTOL)
    assert g.analytic_value == pytest.approx(factor * g.reference_value, rel=1e-9)


# --- claims hold for the derivation, not for one example -------------------------------------------------


def _evidence(derivation, sizes, seeds, edit=None):
    out = []
    for s in seeds:
        point = draw_point(derivation, sizes, s)
        if edit is not None:
            edit(point)
        out.append((point, evaluate(derivation, point)))
    return out


def test_a_passing_example_that_fits_a_mask_error_confirms_it():
    d = DERIVATIONS["gate_no_mask"]
    sizes = {"N": 2, "M": 2}
    seeds = [s for s in range(50) if np.any(draw_point(d, sizes, s).params["A"] <= 0)][:4]

    def all_on(point):
        point.params["A"] = np.abs(point.params["A"])  # the ReLU is on everywhere: the slip is invisible

    evidence = _evidence(d, sizes, seeds) + _evidence(d, sizes, [99], edit=all_on)
    assert evidence[-1][1].status == "pass"
    diagnosis = diagnose(d, "A", evidence)
    assert diagnosis.kind == "partial" and diagnosis.details["pattern"] == "kinks()[0] ≤ 0"
    assert diagnosis.confirmed_on == len(evidence)


def test_a_factor_that_holds_on_one_example_only_is_not_a_scale():
    d = DERIVATIONS["mean_sq_data_factor"]
    evidence = _evidence(d, {"N": 2, "D": 2, "M": 2}, range(5))
    assert diagnose(d, "W", evidence[:1]).kind == "scale"  # one example cannot tell
    assert diagnose(d, "W", evidence).kind == "unknown"


def test_diagnosis_serialises_with_kind_and_details():
    g = gradient(run("rr_half"), "W")
    data = g.to_dict()["diagnosis"]
    assert data["kind"] == "scale" and data["scale_factor"] == 0.5 and data["confirmed_on"] == 5


# --- the claim rule: a kind is claimed only on a clear majority of the examples it was tried on ----------------

#: The search's evidence: the counterexample and CONFIRM_EXAMPLES more at its sizes.
TRIED = 1 + checks.search.search.CONFIRM_EXAMPLES


def test_the_claim_rule_is_four_of_the_searchs_five():
    assert CLAIM_MAJORITY == (4, 5) and TRIED == 5
    assert [needed(n) for n in range(1, 6)] == [1, 2, 3, 4, 4]


@pytest.mark.parametrize(("name", "param"), [(n, p) for n, p, _, _ in CASES], ids=[f"{n}-{p}" for n, p, _, _ in CASES])
def test_every_claim_in_the_corpus_meets_the_rule(name, param):
    d = gradient(run(name), param).diagnosis
    if d.kind == Kind.UNKNOWN:
        assert "tried_on" not in d.details  # nothing claimed
        return
    assert d.details["tried_on"] == TRIED, d.sentence
    assert d.confirmed_on >= needed(TRIED) and 5 * d.confirmed_on >= 4 * TRIED, d.sentence


def _planted(kind: Kind, support: int):
    """A table whose first entry claims ``kind`` on ``support`` examples, whatever the evidence."""
    claim = lambda case: Diagnosis(kind, f"∂f/∂{case.param} planted", {}, support, names_param=True)
    return (table.Entry(kind, claim), *table.TABLE)


@pytest.mark.parametrize("kind", [Kind.SIGN_FLIP, Kind.PARTIAL, Kind.JACOBIAN_DIAGONAL])
def test_a_kind_below_the_rule_is_not_claimed(monkeypatch, kind):
    d = DERIVATIONS["mean_sq_data_factor"]
    evidence = _evidence(d, {"N": 2, "D": 2, "M": 2}, range(TRIED))
    monkeypatch.setattr(table, "TABLE", _planted(kind, needed(TRIED) - 1))
    below = diagnose(d, "W", evidence)
    assert below.kind == Kind.UNKNOWN and below.details["unconfirmed"] == {str(kind): needed(TRIED) - 1}, below.sentence
    assert f"held on only {needed(TRIED) - 1} of {TRIED} examples ({needed(TRIED)} needed" in below.sentence
    monkeypatch.setattr(table, "TABLE", _planted(kind, needed(TRIED)))
    at = diagnose(d, "W", evidence)
    assert at.kind == kind and at.details["tried_on"] == TRIED


def test_partial_says_partly_only_when_some_entry_of_the_counterexample_is_right():
    partials = [gradient(run(n), p).diagnosis for n, p, k, _ in CASES if k == "partial"]
    every = [d for d in partials if d.details["fraction_wrong"] == 1.0]
    some = [d for d in partials if d.details["fraction_wrong"] < 1.0]
    assert every and some  # both wordings are exercised
    for d in every:
        assert "partly" not in d.sentence and "wrong on every entry of the counterexample" in d.sentence, d.sentence
    for d in some:
        assert "is partly wrong" in d.sentence, d.sentence


@pytest.mark.parametrize(("name", "param", "text"), [
    ("attention_no_sqrt", "Q", lambda s: f"√D (={np.sqrt(s['D']):.6g} at D={s['D']})"),
    ("attention_over_d", "K", lambda s: f"1/√D (={1 / np.sqrt(s['D']):.6g} at D={s['D']})"),
    ("variance_unnormalised", "x", lambda s: f"N−1 (={s['N'] - 1:.6g} at N={s['N']})"),
    ("variance_biased", "x", lambda s: f"(N−1)/N (={(s['N'] - 1) / s['N']:.6g} at N={s['N']})"),
])
def test_a_scale_form_is_named_with_its_value(name, param, text):
    report = run(name)
    text = text(report.shapes)
    d = gradient(report, param).diagnosis
    assert d.details["scale_form_text"] == text and f"factor {text}" in d.sentence, d.sentence
    assert d.details["scale_form_checked_at"] is not None  # the form was confirmed at other sizes
