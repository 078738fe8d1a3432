"""The one list of built-in derivations. Adding one: a new module defining ``DERIVATION``, plus its name here."""

from __future__ import annotations

import importlib

from ._contract import Derivation

NAMES: tuple[str, ...] = (
    "relu_regression",
    "two_layer_relu",
    "two_layer_sigmoid",
    "two_layer_sigmoid_mse",
    "linear_layer",
    "softmax",
    "layer_norm",
    "softmax_cross_entropy",
    "tanh_regression",
    "leaky_relu_regression",
    "batch_norm_train",
    "lstm_step",
    "conv2d",
    "max_pool",
    "softmax_cross_entropy_labels",
    "dropout",
)


def builtin(name: str) -> Derivation:
    """The built-in derivation called ``name`` (KeyError if there is none)."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"{__package__}.{name}").DERIVATION


def builtins() -> list[Derivation]:
    """Every built-in derivation, in registry order."""
    return [builtin(n) for n in NAMES]
