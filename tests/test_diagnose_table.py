"""The diagnosis's table and its house rules: the order of the kinds, each entry claiming its own kind,
a factor winning over a layout where both fit, no private names across modules, broad excepts only
around user code, no decision read from message text."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_diagnose import DERIVATIONS
from verigrad.analytic import Derivation
from verigrad.checks.diagnose import TABLE, Entry, diagnose, table
from verigrad.checks.report import Kind, Problem
from verigrad.checks.search import draw_point
from verigrad.checks.verdict import evaluate

DIAGNOSE = Path(table.__file__).parent
MODULES = sorted(DIAGNOSE.glob("*.py"))
#: The order the table promises (its module docstring lists the kinds the same way).
ORDER = [Kind.RAISED, Kind.KEPT_AXIS, Kind.MISSING_BATCH_SUM, Kind.MISSING_SUM, Kind.TRANSPOSE, Kind.SHAPE_MISMATCH, Kind.SIGN_FLIP, Kind.SCALE,
         Kind.JACOBIAN_DIAGONAL, Kind.SUBSAMPLE, Kind.ASSIGNMENT, Kind.TRUNCATION, Kind.PARTIAL, Kind.UNKNOWN]
#: Evidence for the entry test: every dim at this size (clipped to its range), these seeds.
SIZE = 2
SEEDS = (0, 1, 2)
#: The entry test must have seen at least this many different kinds, or it tested little.
MIN_KINDS_SEEN = 6


def _first_seen(kinds):
    out = []
    for k in kinds:
        if k not in out:
            out.append(k)
    return out


def test_table_tries_the_kinds_in_the_documented_order():
    named = [k for k in _first_seen(e.kind for e in TABLE) if k != Kind.UNKNOWN] + [Kind.UNKNOWN]
    assert named == ORDER
    assert TABLE[-1].kind == Kind.UNKNOWN
    documented = re.findall(r"^\* ``(\w+)``", table.__doc__, re.M)
    assert documented == [str(k) for k in ORDER]


def _evidence(derivation: Derivation):
    sizes = {d: min(max(SIZE, derivation.dim_range(d)[0]), derivation.dim_range(d)[1]) for d in derivation.symbols}
    points = [draw_point(derivation, sizes, s) for s in SEEDS]
    return [(p, evaluate(derivation, p)) for p in points]


def test_each_entry_claims_its_own_kind(monkeypatch):
    seen = []

    def checked(entry: Entry) -> Entry:
        def claim(case):
            found = entry.claim(case)
            if found is not None:
                assert found.kind == entry.kind and isinstance(found.kind, Kind), (entry, found)
                seen.append(found.kind)
            return found

        return Entry(entry.kind, claim)

    monkeypatch.setattr(table, "TABLE", tuple(checked(e) for e in TABLE))
    for derivation in DERIVATIONS.values():
        evidence = _evidence(derivation)
        report = evidence[0][1]
        for g in report.failures:
            if g.problem in (None, Problem.RAISED, Problem.SHAPE):
                diagnose(derivation, g.param, evidence)
    assert len(set(seen)) >= MIN_KINDS_SEEN, sorted(set(seen))


# --- a constant that fits the reference's own layout decides ------------------------------------------------


def _quadratic_form(xp, x, W):
    return xp.sum(x * (W @ x))


def _symmetric() -> Derivation:
    """f = xᵀ W x with ∂f/∂W = x xᵀ, symmetric (equal to its own transpose), given negated. Built here, not
    at module level, so that the pytest plugin does not collect it as a derivation to pass."""
    return Derivation(name="quadratic_form_negated", shapes={"x": ("D",), "W": ("D", "D")}, forward=_quadratic_form,
                      gradients=lambda x, W: {"W": -np.outer(x, x)}, check=["W"])


def test_a_sign_flip_of_a_symmetric_gradient_is_a_sign_flip_not_a_transpose():
    d = _symmetric()
    evidence = [(p, evaluate(d, p)) for p in (draw_point(d, {"D": 3}, s) for s in SEEDS)]
    assert evidence[0][1].status == "fail"
    found = diagnose(d, "W", evidence)
    assert found.kind == Kind.SIGN_FLIP, found.sentence
    assert found.confirmed_on == len(SEEDS)


# --- house rules, read off the source -----------------------------------------------------------------------


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_private_name_is_imported_across_modules(path):
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports {private} from {node.module}"
            modules.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names)
    reached = [f"{n.value.id}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
               and n.value.id in modules and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not reached, f"{path.name} reaches into {reached}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_broad_excepts_are_around_user_code_only(path):
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.ExceptHandler):
            broad = node.type is None or (isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException"))
            if broad:
                assert "# user code" in lines[node.lineno - 1], f"{path.name}:{node.lineno}: {lines[node.lineno - 1].strip()}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_decision_reads_message_text(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            assert not any(isinstance(o, ast.Attribute) and o.attr in ("message", "sentence") for o in operands), f"{path.name}:{node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("startswith", "endswith", "find", "index"):
            target = node.func.value
            assert not (isinstance(target, ast.Attribute) and target.attr in ("message", "sentence", "raised")), f"{path.name}:{node.lineno}"
