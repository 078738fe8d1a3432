# expect: returned objects of type generator
# exit: 1
from verigrad import Derivation


def forward(xp, X, w):
    return xp.sum((X @ w) ** 2)


def gradients(X, w):
    r = X @ w
    # A generator of the right values: no array (the user raised nothing; it is the wrong type).
    return {"X": [2 * r[i] * w for i in range(len(r))], "w": (v for v in 2 * X.T @ r)}


D = Derivation(name="gradients_generator", shapes={"X": ("N", "D"), "w": ("D",)}, forward=forward, gradients=gradients)
