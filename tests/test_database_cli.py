"""The example database through the command: a failure found by one ``verigrad check`` is the first example of the
next; ``--no-database`` neither reads nor writes it. Every test runs in its own tmp_path.

A run without ``--seed`` draws its seed at random, and only such a run uses the database. The draw is fixed here
(``DRAWN``): a random draw that finds no failure in 60 examples would fail the test on a correct tool (it happened
once in a CI run), and the gate must be deterministic (STYLE rule 12).
"""

import json
import os
import textwrap
from types import SimpleNamespace

import pytest

from verigrad.checks import cli
from verigrad.checks.cli import main

#: The seed a run without --seed "draws": one whose 60 examples reach N >= 6, D >= 5.
DRAWN = 2_718_281_828

WRONG_WHEN_LARGE = '''
import numpy as np
from verigrad import Derivation

def forward(xp, X, W):
    return xp.sum((X @ W) ** 2)

def gradients(X, W):
    r = 2 * (X @ W)
    wrong = X.shape[0] >= 6 and X.shape[1] >= 5
    return {"X": r @ W.T, "W": X.T @ r * (1.5 if wrong else 1.0)}

large = Derivation(name="large", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=forward, gradients=gradients)
'''


@pytest.fixture
def target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(cli, "secrets", SimpleNamespace(randbits=lambda bits: DRAWN % 2**bits))
    (tmp_path / "large.py").write_text(textwrap.dedent(WRONG_WHEN_LARGE))
    return "large.py"


def checked(capsys, *argv):
    code = main(["check", "--examples", "60", "--no-color", "--json", "report.json", *argv])
    capsys.readouterr()
    doc = json.loads(open("report.json").read())
    (entry,) = doc["derivations"]
    return code, {**entry, "run_seed": doc["seed"]}


def test_a_failure_found_by_one_run_is_the_first_example_of_the_next(target, capsys):
    code, first = checked(capsys, target)
    assert first["run_seed"] == DRAWN  # the fixed draw, as a run without --seed reports it
    assert code == 1 and first["examples"] > 1
    assert os.path.isdir(os.path.join(".hypothesis", "verigrad"))
    code, second = checked(capsys, target)
    assert code == 1
    # The saved point fails at once; then ∂f/∂X, right there, gets its whole budget of 60 examples of 16 points.
    assert (second["examples"], second["points"]) == (1 + 60, 1 + 16 * 60)
    assert second["counterexample"] == first["counterexample"]


def test_no_database_neither_reads_nor_writes(target, capsys):
    code, alone = checked(capsys, target, "--no-database")
    assert code == 1 and alone["status"] == "fail"
    assert not os.path.exists(".hypothesis")
    checked(capsys, target)  # saves the failure
    code, again = checked(capsys, target, "--no-database")
    assert code == 1 and again["examples"] > 1  # the saved failure was not read


def test_a_named_seed_is_reproducible_whatever_the_database_holds(target, capsys):
    code, seeded = checked(capsys, target, "--seed", "3")
    assert code == 1 and seeded["examples"] > 1
    assert not os.path.exists(".hypothesis")  # a --seed run writes nothing either
    checked(capsys, target)  # a run without --seed saves the failure
    assert os.path.isdir(os.path.join(".hypothesis", "verigrad"))
    code, again = checked(capsys, target, "--seed", "3")
    assert code == 1
    assert (again["examples"], again["points"], again["counterexample"]) == (seeded["examples"], seeded["points"], seeded["counterexample"])
