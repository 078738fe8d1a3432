"""The example database: a failure found on one run is the first example of the next; one key per derivation;
``database=False``, ``CI`` and an explicit seed leave runs as they were. Every test works in its own tmp_path.

A run without a seed draws one at random, and only such a run uses the database. The draws are fixed here
(``DRAWS``, in turn): the gate must be deterministic (STYLE rule 12), and a draw that finds no failure would fail
a test on a correct tool.
"""

import itertools
import os
import textwrap
from types import SimpleNamespace

import pytest

from tests.helpers import altered
from verigrad import Derivation, analytic
from verigrad.checks import check
from verigrad.checks.loader import load_file
from verigrad.checks.search import VALUES_PER_SIZE
from verigrad.checks.search import search as search_module
from verigrad.checks.search.database import DATABASE_DIR, derivation_key, known_failures

BASE = analytic.builtin("relu_regression")
EXAMPLES = 60  # a random example has N ≥ 6 and D ≥ 5 with probability 3/16: missed in 60 with probability < 1e-5
#: The seeds that runs without one "draw", in turn.
DRAWS = (2_718_281_828, 3_141_592_653, 1_414_213_562, 1_732_050_807, 2_236_067_977, 2_645_751_311)


def wrong_when_large(g, p):
    n, d = p["X"].shape
    return {**g, "W": g["W"] * (1.5 if n >= 6 and d >= 5 else 1.0)}


@pytest.fixture
def wrong():
    """Built here: a Derivation at module level is collected by the pytest plugin as a check of its own."""
    return altered(BASE, "relu_wrong_when_large", wrong_when_large)


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    draws = itertools.cycle(DRAWS)
    monkeypatch.setattr(search_module, "secrets", SimpleNamespace(randbits=lambda bits: next(draws) % 2**bits))
    return tmp_path


def saved(derivation, target=None):
    return known_failures(derivation, target).entries()


def files_under(path):
    return sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names)


def test_a_failure_found_is_the_first_example_tried_on_the_next_run(wrong):
    first = check(wrong, examples=EXAMPLES)
    assert first.status == "fail"
    assert first.shapes["N"] >= 6 and first.shapes["D"] >= 5
    assert first.examples > 1
    assert os.path.isdir(DATABASE_DIR)
    assert saved(wrong) == [(first.shapes, first.point_seed)]

    second = check(wrong, examples=EXAMPLES)
    assert second.status == "fail"
    # The saved point, tried first, fails at once (1 example, 1 point); then the gradients that pass there
    # get their whole budget, none of it spent yet (checks/search/explore.py).
    assert (second.examples, second.points) == (1 + EXAMPLES, 1 + VALUES_PER_SIZE * EXAMPLES)
    assert (second.shapes, second.point_seed) == (first.shapes, first.point_seed)
    assert second.seed != first.seed and {first.seed, second.seed} <= set(DRAWS)  # a new draw all the same (a fixed one)
    g0, g1 = first.failures[0], second.failures[0]
    assert (g1.param, g1.worst_index, g1.analytic_value) == (g0.param, g0.worst_index, g0.analytic_value)


def test_a_fixed_derivation_drops_its_entry_and_the_seed_still_replays_the_rest(wrong):
    found = check(wrong, examples=EXAMPLES)
    assert found.status == "fail" and saved(wrong)
    # Fixed, same name and file and gradients function: the same key, and its saved failure now passes.
    fixed = altered(BASE, wrong.name, lambda g, p: g)
    assert derivation_key(fixed, None) == derivation_key(wrong, None)
    run = check(fixed, examples=10, seed=5, database=True)
    assert run.passed
    assert saved(fixed) == []
    alone = check(fixed, examples=10, seed=5, database=False)
    assert run.examples == alone.examples + 1  # the saved example, then exactly the seeded run
    assert run.points == alone.points + 16


def test_two_derivations_never_share_an_entry(wrong):
    found = check(wrong, examples=EXAMPLES, target="a.py")
    assert found.status == "fail"
    assert saved(wrong, "a.py")
    assert saved(wrong, "b.py") == []  # the same derivation loaded from another file
    assert saved(wrong) == []  # ... or checked without a target
    other = altered(BASE, "relu_other", wrong_when_large)
    assert saved(other, "a.py") == []  # another derivation in the same file


def test_two_derivations_of_one_name_in_different_files_have_different_keys(workdir):
    source = textwrap.dedent(
        """
        import numpy as np
        from verigrad import Derivation

        def forward(xp, X, W):
            return xp.sum((X @ W) ** 2)

        def gradients(X, W):
            r = 2 * (X @ W)
            return {"X": r @ W.T, "W": X.T @ r * (1.5 if X.shape[0] >= 6 and X.shape[1] >= 5 else 1.0)}

        same = Derivation(name="same", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=forward, gradients=gradients)
        """
    )
    loaded = []
    for folder in ("a", "b"):
        (workdir / folder).mkdir()
        (workdir / folder / "same.py").write_text(source)
        loaded += load_file(str(workdir / folder / "same.py"))
    a, b = loaded
    assert a.name == b.name
    assert derivation_key(a, None) != derivation_key(b, None)
    found = check(a, examples=EXAMPLES)
    assert found.status == "fail"
    assert saved(a) and saved(b) == []


def test_database_false_neither_reads_nor_writes(wrong, workdir):
    alone = check(wrong, examples=EXAMPLES, seed=3, database=False)
    assert alone.status == "fail"
    assert not os.path.exists(workdir / ".hypothesis")  # not written
    found = check(wrong, examples=EXAMPLES)  # now there is an entry
    assert found.status == "fail" and saved(wrong)
    before = files_under(workdir / DATABASE_DIR)
    again = check(wrong, examples=EXAMPLES, seed=3, database=False)
    assert (again.examples, again.points, again.shapes, again.point_seed) == (alone.examples, alone.points, alone.shapes, alone.point_seed)
    unseeded = check(wrong, examples=EXAMPLES, database=False)
    assert unseeded.examples > 1  # not read: the saved failure is not tried first
    assert files_under(workdir / DATABASE_DIR) == before  # not written


def test_a_seeded_run_is_unaffected_by_the_database(wrong, workdir):
    alone = check(wrong, examples=EXAMPLES, seed=3, database=False)
    found = check(wrong, examples=EXAMPLES)
    assert found.status == "fail" and saved(wrong)
    before = files_under(workdir / DATABASE_DIR)
    seeded = check(wrong, examples=EXAMPLES, seed=3)  # database left at its default
    assert (seeded.examples, seeded.points, seeded.shapes, seeded.point_seed) == (alone.examples, alone.points, alone.shapes, alone.point_seed)
    assert files_under(workdir / DATABASE_DIR) == before


def test_with_database_true_the_printed_seed_replays_a_run_that_involves_no_entry(wrong, workdir):
    drawn = check(wrong, examples=EXAMPLES, seed=3, database=True)  # a caller that drew seed 3 itself
    alone = check(wrong, examples=EXAMPLES, seed=3, database=False)
    assert (drawn.examples, drawn.points, drawn.shapes, drawn.point_seed) == (alone.examples, alone.points, alone.shapes, alone.point_seed)
    assert saved(wrong) == [(drawn.shapes, drawn.point_seed)]  # and it was written


def test_ci_turns_the_database_off(wrong, workdir, monkeypatch):
    monkeypatch.setenv("CI", "1")
    found = check(wrong, examples=EXAMPLES, database=True)
    assert found.status == "fail"
    assert not os.path.exists(workdir / ".hypothesis")


def test_a_saved_failure_the_search_cannot_draw_is_skipped_and_one_the_dims_rule_out_is_dropped(wrong):
    found = check(wrong, examples=EXAMPLES)
    assert found.status == "fail"
    smaller = check(wrong, examples=5, seed=1, max_size=4, database=True)  # N ≥ 6 is not drawn in this run
    assert smaller.passed
    assert smaller.examples == 5  # the saved N ≥ 6 point was not tried ...
    assert saved(wrong) == [(found.shapes, found.point_seed)]  # ... nor forgotten
    # The derivation itself no longer allows N ≥ 6 (same name, forward and gradients: the same key).
    narrower = Derivation(name=wrong.name, shapes=BASE.shapes, forward=BASE.forward, gradients=wrong.gradients, kinks=BASE.kinks, dims={"N": (1, 5)})
    assert derivation_key(narrower, None) == derivation_key(wrong, None)
    assert saved(narrower) == []  # dropped


LAMBDAS = """
import numpy as np
from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "W": ("D", "M")}
forward = lambda xp, X, W: xp.sum((X @ W) ** 2)
right = Derivation(name="twin", shapes=SHAPES, forward=forward, gradients=lambda X, W: {"X": 2 * (X @ W) @ W.T, "W": X.T @ (2 * (X @ W))})
wrong = Derivation(name="twin", shapes=SHAPES, forward=forward, gradients=lambda X, W: {"X": 2 * (X @ W) @ W.T, "W": X.T @ (3 * (X @ W))})
"""


def test_two_derivations_of_one_name_written_with_lambdas_in_one_file_have_their_own_entries(workdir):
    (workdir / "twins.py").write_text(LAMBDAS)
    right, wrong = load_file("twins.py")
    assert (right.name, wrong.name) == ("twin", "twin")
    assert derivation_key(right, "twins.py") != derivation_key(wrong, "twins.py")
    assert check(wrong, examples=5, target="twins.py").status == "fail"
    kept = saved(wrong, "twins.py")
    assert kept
    assert check(right, examples=5, target="twins.py").passed  # the right one tries nothing of the wrong one's ...
    assert saved(wrong, "twins.py") == kept  # ... and deletes none of it
