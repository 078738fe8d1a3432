"""2-D convolution (cross-correlation, as in every deep-learning library) with stride and zero padding: a layer.

Stride s and padding p are hyperparameters, searched over their grids; the output size is an expression
of the sizes and of them. Forward (glossary: ``analytic/__init__.py``)::

    x:(N, C, H, W)   w:(F, C, K, K)   b:(F,)
    x̃ = x zero-padded by p on both sides of H and W        x̃:(N, C, H+2p, W+2p)
    H' = (H + 2p − K) // s + 1,  W' = (W + 2p − K) // s + 1
    y[n, f, i, j] = b[f] + Σ_{c, k, l} w[f, c, k, l] · x̃[n, c, s·i + k, s·j + l]      y:(N, F, H', W')
    f = ⟨G, y⟩                                              G = grad_output:(N, F, H', W')

y is linear in each of x, w, b, so each gradient collects G against the other factor of the same term::

    ∂f/∂b[f]          = Σ_{n, i, j} G[n, f, i, j]                                     (F,)
    ∂f/∂w[f, c, k, l] = Σ_{n, i, j} G[n, f, i, j] · x̃[n, c, s·i + k, s·j + l]          (F, C, K, K)
    ∂f/∂x̃[n, c, a, e] = Σ_{f, k, l : s·i + k = a, s·j + l = e} G[n, f, i, j] · w[f, c, k, l]
    ∂f/∂x             = ∂f/∂x̃ [:, :, p : p + H, p : p + W]    (the padding is not a parameter)  (N, C, H, W)

The scatter into ∂f/∂x̃ adds (windows overlap when s < K), and rows/columns of x̃ past the last
window ((H + 2p − K) not a multiple of s) get 0. Both loops run over the K² kernel offsets (k, l):
at each, the window entries form the strided slice x̃[:, :, k : k + s(H'−1) + 1 : s, l : ...].
"""

import numpy as np
from array_api_compat import device

from ._contract import Derivation


def pad_hw(xp, x, pad):
    """``x`` with ``pad`` zero rows and columns on both sides of its last two axes (concatenation: no xp.pad)."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    rows = xp.zeros((n, c, pad, w), dtype=x.dtype, device=device(x))
    x = xp.concat([rows, x, rows], axis=2)
    cols = xp.zeros((n, c, h + 2 * pad, pad), dtype=x.dtype, device=device(x))
    return xp.concat([cols, x, cols], axis=3)


def windows(k, e, stride, h_out, w_out):
    """The index slices of x̃ that kernel offset (k, e) meets, one entry per output position."""
    return slice(k, k + stride * (h_out - 1) + 1, stride), slice(e, e + stride * (w_out - 1) + 1, stride)


def out_size(n, k, stride, pad):
    return (n + 2 * pad - k) // stride + 1


def forward(xp, x, w, b, stride, pad):
    _, _, h, wd = x.shape
    f, _, k, _ = w.shape
    h_out, w_out = out_size(h, k, stride, pad), out_size(wd, k, stride, pad)
    xt = pad_hw(xp, x, pad)
    y = xp.reshape(b, (1, 1, 1, f))
    for i in range(k):
        for j in range(k):
            rows, cols = windows(i, j, stride, h_out, w_out)
            patch = xp.permute_dims(xt[:, :, rows, cols], (0, 2, 3, 1))  # (N, H', W', C)
            y = y + patch @ xp.permute_dims(w[:, :, i, j], (1, 0))  # (N, H', W', F)
    return xp.permute_dims(y, (0, 3, 1, 2))


def gradients(x, w, b, stride, pad, grad_output):
    G = grad_output
    _, _, h, wd = x.shape
    k = w.shape[2]
    h_out, w_out = G.shape[2:]
    xt = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxt, dw = np.zeros_like(xt), np.zeros_like(w)
    for i in range(k):
        for j in range(k):
            rows, cols = windows(i, j, stride, h_out, w_out)
            dw[:, :, i, j] = np.einsum("nfab,ncab->fc", G, xt[:, :, rows, cols])
            dxt[:, :, rows, cols] += np.einsum("nfab,fc->ncab", G, w[:, :, i, j])
    return {"x": dxt[:, :, pad : pad + h, pad : pad + wd], "w": dw, "b": G.sum(axis=(0, 2, 3))}


DERIVATION = Derivation(
    name="conv2d",
    shapes={"x": ("N", "C", "H", "W"), "w": ("F", "C", "K", "K"), "b": ("F",)},
    hyper={"stride": [1, 2], "pad": [0, 1]},
    output=("N", "F", "(H+2*pad-K)//stride+1", "(W+2*pad-K)//stride+1"),
    dims={"N": (1, 2), "C": (1, 3), "F": (1, 3), "H": (1, 6), "W": (1, 6), "K": (1, 3)},
    forward=forward,
    gradients=gradients,
)
