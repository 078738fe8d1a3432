"""The Derivation contract validates itself when built, naming the derivation in every message."""

import numpy as np
import pytest

from verigrad import analytic
from verigrad.analytic import Derivation, DerivationError


def fwd(xp, X, W):
    return xp.sum(X @ W)


def grads(X, W):
    return {"X": np.ones_like(X) @ W.T, "W": X.T @ np.ones((X.shape[0], W.shape[1]))}


GOOD = {"name": "lin", "shapes": {"X": ("N", "D"), "W": ("D", 3)}, "forward": fwd, "gradients": grads}


def build(**changes):
    return Derivation(**{**GOOD, **changes})


def test_good_derivation_exposes_its_structure():
    d = build()
    assert d.params == ("X", "W")
    assert d.symbols == ("N", "D")
    assert d.check == ("X", "W")
    assert d.shape_of("W", {"N": 2, "D": 5}) == (5, 3)
    assert not d.is_layer


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        pytest.param({"name": ""}, "name must be a non-empty string", id="empty-name"),
        pytest.param({"shapes": {}}, "shapes must be a non-empty mapping", id="no-shapes"),
        pytest.param({"shapes": {"X": ("N", "D"), "W": ("D", 0)}}, "fixed dim 0 must be >= 1", id="zero-dim"),
        pytest.param({"shapes": {"X": ("N", "D"), "W": ("D", 2.5)}}, "must be a name or a positive int", id="float-dim"),
        pytest.param({"shapes": {"X": ("N", "D"), "xp": ("D",)}}, "must be a Python identifier other than 'xp'", id="param-named-xp"),
        pytest.param({"forward": 3}, "forward must be callable", id="forward-not-callable"),
        pytest.param({"forward": lambda xp, X: X}, "forward cannot take the argument(s) W", id="forward-missing-param"),
        pytest.param({"gradients": lambda X: {}}, "gradients cannot take the argument(s) W", id="gradients-missing-param"),
        pytest.param({"check": ["Z"]}, "check names unknown parameter(s) 'Z'", id="check-unknown"),
        pytest.param({"check": "X"}, "check must be a list", id="check-string"),
        pytest.param({"ranges": {"X": (1, 0)}}, "low < high", id="bad-range"),
        pytest.param({"ranges": {"Q": (0, 1)}}, "ranges names unknown parameter 'Q'", id="range-unknown"),
        pytest.param({"dims": {"K": (1, 3)}}, "dims names 'K', which no parameter's shape uses", id="unknown-dim"),
        pytest.param({"dims": {"N": (0, 3)}}, "1 <= low <= high", id="dim-range-zero"),
        pytest.param({"output": ("N", "K")}, "output uses dim 'K'", id="output-unknown-dim"),
        pytest.param({"kinks": "relu"}, "kinks must be callable", id="kinks-not-callable"),
    ],
)
def test_malformed_derivations_are_refused_with_the_name(changes, needle):
    with pytest.raises(DerivationError) as info:
        build(**changes)
    text = str(info.value)
    assert needle in text
    assert text.startswith(f"derivation {changes.get('name', 'lin')!r}:")


def test_layer_gradients_must_accept_grad_output():
    with pytest.raises(DerivationError, match=r"gradients cannot take the argument\(s\) grad_output"):
        build(output=("N", 3), forward=lambda xp, X, W: X @ W)


def test_kwargs_catch_all_is_accepted():
    def any_grads(**p):
        return grads(**p)

    d = build(forward=lambda xp, **p: xp.sum(p["X"] @ p["W"]), gradients=any_grads)
    assert d.params == ("X", "W")


def test_registry_lists_each_builtin_once_with_a_docstring():
    names = [d.name for d in analytic.builtins()]
    assert names == list(analytic.NAMES)
    assert len(set(names)) == len(names)
    for d in analytic.builtins():
        assert "∂f/∂" in d.doc, d.name
        for p in d.params:
            assert p in d.doc, (d.name, p)


def test_a_name_taken_from_a_str_enum_is_held_as_a_plain_str():
    """A StrEnum member of the user's module would carry its class into every report, pickle and process."""
    from enum import StrEnum

    class Names(StrEnum):
        LIN = "lin"

    d = Derivation(**{**GOOD, "name": Names.LIN})
    assert type(d.name) is str and d.name == "lin"
