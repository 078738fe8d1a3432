"""2-D max pooling with square windows of size k and stride s (hyperparameters; s < k: windows overlap): a layer.

Forward (glossary: ``analytic/__init__.py``); no padding::

    x:(N, C, H, W)
    H' = (H − k) // s + 1,  W' = (W − k) // s + 1
    y[n, c, i, j] = max_{0 ≤ a, e < k} x[n, c, s·i + a, s·j + e]      y:(N, C, H', W')
    f = ⟨G, y⟩                                                       G = grad_output:(N, C, H', W')

Each window's maximum is one of its entries, (a*, e*) = argmax; away from ties y[n, c, i, j] =
x[n, c, s·i + a*, s·j + e*] locally, so its derivative is 1 at that entry and 0 at the others::

    ∂f/∂x[n, c, r, q] = Σ_{i, j : (r, q) = (s·i + a*, s·j + e*)} G[n, c, i, j]      (N, C, H, W)

The sum matters when windows overlap (s < k): one entry can be the maximum of several windows and
then collects every one of their G's. Entries of no window's maximum get 0.

Kinks: the forward switches where two entries of a window tie for its maximum. For each offset
(a, e) the switch x[n, c, s·i + a, s·j + e] − max of the window's other entries is > 0 exactly where
that entry is the maximum, so a change of sign is a change of argmax. At an exact tie the gradients
give G to the first maximum in (a, e) order (a subgradient; torch's max splits it, which is why
ties are declared rather than compared).
"""

import numpy as np

from ._contract import Derivation


def slabs(x, size, stride):
    """The k² window entries as arrays of the output's shape, in (a, e) order, with their index slices."""
    h_out = (x.shape[2] - size) // stride + 1
    w_out = (x.shape[3] - size) // stride + 1
    out = []
    for a in range(size):
        for e in range(size):
            at = (slice(None), slice(None), slice(a, a + stride * (h_out - 1) + 1, stride), slice(e, e + stride * (w_out - 1) + 1, stride))
            out.append((at, x[at]))
    return out


def forward(xp, x, size, stride):
    entries = [s for _, s in slabs(x, size, stride)]
    y = entries[0]
    for s in entries[1:]:
        y = xp.maximum(y, s)
    return y


def kinks(xp, x, size, stride):
    entries = [s for _, s in slabs(x, size, stride)]
    if len(entries) == 1:
        return []
    out = []
    for i, s in enumerate(entries):
        others = [t for j, t in enumerate(entries) if j != i]
        m = others[0]
        for t in others[1:]:
            m = xp.maximum(m, t)
        out.append(s - m)
    return out


def gradients(x, size, stride, grad_output):
    G = grad_output
    y = forward(np, x, size, stride)
    dx = np.zeros_like(x)
    taken = np.zeros(y.shape, dtype=bool)
    for at, s in slabs(x, size, stride):
        hit = (s == y) & ~taken
        taken |= hit
        dx[at] += G * hit
    return {"x": dx}


DERIVATION = Derivation(
    name="max_pool",
    shapes={"x": ("N", "C", "H", "W")},
    hyper={"size": [2, 3], "stride": [2, 1]},
    output=("N", "C", "(H-size)//stride+1", "(W-size)//stride+1"),
    dims={"N": (1, 2), "C": (1, 2), "H": (1, 7), "W": (1, 7)},
    kinks=kinks,
    forward=forward,
    gradients=gradients,
)
