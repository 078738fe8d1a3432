# expect: forward returned an array of shape (
# exit: 3
from verigrad import Derivation

SHAPES = {"X": ("N", "D"), "W": ("D", "M")}


def gradients(X, W, grad_output):
    return {"X": grad_output @ W.T, "W": X.T @ grad_output}


# The output is declared (N, M) but the forward returns its transpose: the forward's error, never the gradients'.
D = Derivation(name="forward_transposed", shapes=SHAPES, output=("N", "M"), forward=lambda xp, X, W: (X @ W).T, gradients=gradients)
