"""The forward's matrix products handed to its declared switches: the same values, computed once, and
never once something was written in place (reference/_switches.py)."""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from verigrad import Derivation
from verigrad.reference import torch_namespace, value_and_signs

PRODUCTS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)


class CountProducts(TorchFunctionMode):
    """Counts the matrix products that reach torch (a product handed over from the forward does not)."""

    def __init__(self):
        super().__init__()
        self.products = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.products += func in PRODUCTS
        return func(*args, **(kwargs or {}))


def plain(xp, X, W, Y):
    h = X @ W
    return xp.sum((h * (h > 0) - Y) ** 2)


def in_place(xp, X, W, Y):
    h = X @ W
    h *= h > 0  # the product itself is overwritten: its signs are not the switch's
    return xp.sum((h - Y) ** 2)


def write_before(xp, X, W, Y):
    Z = X * 1.0
    Z *= 2.0  # a write before the product: the product, computed after it, is handed over
    h = X @ W
    return xp.sum((h * (h > 0) - Y) ** 2 + 0 * Z[0, 0])


def write_after(xp, X, W, Y):
    h = X @ W
    Z = X * 1.0
    Z *= 2.0  # a write after the product, even into another tensor: the product is not handed over
    return xp.sum((h * (h > 0) - Y) ** 2 + 0 * Z[0, 0])


def returns_a_view(xp, X, W, Y):
    return (X @ W)[0, 0]


def switch(xp, X, W, Y):
    return [X @ W]


def switch_writes(xp, X, W, Y):
    s = X @ W
    s *= -1.0  # the switch writes into what it was handed: the forward's value must not move
    return [s]


def switch_twice(xp, X, W, Y):
    s = X @ W
    t = X @ W  # a tensor of its own, as without sharing: the write into s leaves it alone
    s *= -1.0
    return [s, t]


def derivation(forward, kinks=switch):
    return Derivation(
        name=forward.__name__, shapes={"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")},
        forward=forward, gradients=lambda X, W, Y: {}, kinks=kinks,
    )  # fmt: skip


def point(rows=5, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"X": (rows, 4, 3), "W": (rows, 3, 2), "Y": (rows, 4, 2)}
    return {k: torch.from_numpy(rng.normal(size=shape)) for k, shape in shapes.items()}


def vmapped(d, values):
    return torch.func.vmap(lambda X, W, Y: value_and_signs(d, {"X": X, "W": W, "Y": Y}, None))(values["X"], values["W"], values["Y"])


def expected(d, values):
    """f and the switch signs as computed without anything handed over: forward and switches on their own."""
    xp = torch_namespace()

    def one(X, W, Y):
        args = {"X": X, "W": W, "Y": Y}
        return d.forward(xp, **args), tuple(torch.sign(s) for s in d.kinks(xp, **{k: v.clone() for k, v in args.items()}))

    return torch.func.vmap(one)(values["X"], values["W"], values["Y"])


@pytest.mark.parametrize("forward", [plain, in_place, write_before, write_after, returns_a_view], ids=lambda f: f.__name__)
@pytest.mark.parametrize("kinks", [switch, switch_writes, switch_twice], ids=lambda f: f.__name__)
def test_the_values_are_those_computed_without_sharing(forward, kinks):
    d = derivation(forward, kinks)
    values = point()
    f, signs = vmapped(d, values)
    want_f, want_signs = expected(d, values)
    assert torch.equal(f, want_f)
    assert len(signs) == len(want_signs)
    for got, want in zip(signs, want_signs, strict=True):
        assert torch.equal(got, want)


def test_the_in_place_forward_would_give_other_signs_if_handed_over():
    """The case the guard is for: the overwritten product has no negative entries, the switch has."""
    values = point()
    h = values["X"] @ values["W"]
    assert (h < 0).any()
    _, signs = vmapped(derivation(in_place), values)
    assert (signs[0] < 0).any()


COUNTS = [(plain, 1), (returns_a_view, 1), (write_before, 1), (in_place, 2), (write_after, 2)]


@pytest.mark.parametrize(("forward", "products"), COUNTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_a_product_the_forward_computed_is_not_computed_again(forward, products):
    counter = CountProducts()
    with counter:
        vmapped(derivation(forward), point())
    assert counter.products == products


def test_without_switches_nothing_is_intercepted():
    d = derivation(plain, kinks=None)
    f, signs = vmapped(d, point())
    assert signs == ()
    assert torch.equal(f, expected(derivation(plain), point())[0])

