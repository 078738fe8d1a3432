"""The course-style ``examples/course/layers.py`` (NumPy forwards with np.pad and in-place writes,
``forward(...) -> (out, cache)``, ``backward(dout, cache)``), loaded as it is, with the planted mistakes and
the from-scratch layer class that tests/test_adapters.py checks through the adapters."""

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parent.parent / "examples" / "course" / "layers.py"
_spec = importlib.util.spec_from_file_location("course_layers_as_written", _PATH)
layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layers)

affine_forward, affine_backward = layers.affine_forward, layers.affine_backward
relu_forward, relu_backward = layers.relu_forward, layers.relu_backward
conv_forward_naive, conv_backward_naive = layers.conv_forward_naive, layers.conv_backward_naive
max_pool_forward_naive, max_pool_backward_naive = layers.max_pool_forward_naive, layers.max_pool_backward_naive
softmax_loss = layers.softmax_loss
lstm_step_forward, lstm_step_backward = layers.lstm_step_forward, layers.lstm_step_backward


# --- planted mistakes ----------------------------------------------------------------------------------


def affine_backward_no_batch_sum(dout, cache):
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, dout[0]


def relu_backward_wrong_mask(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x > 0] = 0
    return dx


def conv_backward_wrong_at_pad0(dout, cache):
    """Right at pad 1; at pad 0 the first filter's gradient is lost."""
    dx, dw, db = conv_backward_naive(dout, cache)
    if cache[3]["pad"] == 0:
        dw = dw.copy()
        dw[0] = 0.0
    return dx, dw, db


def max_pool_backward_assigns(dout, cache):
    """Each window's maximum gets its gradient by ``=``: where windows overlap (stride 1) only the last counts."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*dout.shape):
        window = x[n, c, i * s : i * s + ph, j * s : j * s + pw]
        r, q = divmod(int(np.argmax(window)), window.shape[1])
        dx[n, c, i * s + r, j * s + q] = dout[n, c, i, j]
    return dx


def softmax_loss_no_mean(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def lstm_step_backward_drops_dnext_c(dnext_h, dnext_c, cache):
    return lstm_step_backward(dnext_h, np.zeros_like(dnext_c), cache)


# --- a from-scratch library's layer: parameters and their gradients on the object ------------------------


class Dense:
    def __init__(self):
        self.W = None
        self.b = None

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad):
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        return grad @ self.W.T


class DenseWrongBias(Dense):
    def backward(self, grad):
        dx = super().backward(grad)
        self.db = grad[0]
        return dx
