"""Derivations with one slip each, written as backprop is written, for tests/test_slip.py (the note's own two
slips are in examples/note_two_layer.py). Each slip's line is found by its text, so the tests name the line."""

import numpy as np
import torch

from verigrad import Derivation


# --- a layer (grad_output): tanh's derivative written 1 − t where 1 − t² belongs ----------------------------
def tanh_forward(xp, X, W):
    h = X @ W
    return xp.tanh(h)


def tanh_gradients(X, W, grad_output):
    t = np.tanh(X @ W)
    grad_h = grad_output * (1.0 - t)
    grad_W = X.T @ grad_h
    grad_X = grad_h @ W.T
    return {"X": grad_X, "W": grad_W}


tanh_layer = Derivation(name="tanh_layer", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=tanh_forward, gradients=tanh_gradients)


# --- an in-place write: the ReLU mask zeroes the wrong entries ------------------------------------------------
def relu_forward(xp, X, W1, W2, Y):
    h = X @ W1
    h_relu = h * (h > 0)
    Y_pred = h_relu @ W2
    return xp.sum((Y_pred - Y) ** 2)


def relu_gradients(X, W1, W2, Y):
    h = X @ W1
    h_relu = np.maximum(h, 0.0)
    grad_Y_pred = 2.0 * (h_relu @ W2 - Y)
    grad_W2 = h_relu.T @ grad_Y_pred
    grad_h = grad_Y_pred @ W2.T
    grad_h[h > 0] = 0
    grad_W1 = X.T @ grad_h
    return {"W1": grad_W1, "W2": grad_W2}


RELU_SHAPES = {"X": ("N", "D_in"), "W1": ("D_in", "H"), "W2": ("H", "D_out"), "Y": ("N", "D_out")}
relu_inplace = Derivation(
    name="relu_inplace", shapes=RELU_SHAPES, forward=relu_forward, gradients=relu_gradients, check=("W1", "W2"),
    kinks=lambda xp, X, W1, W2, Y: [X @ W1],
)


# --- a helper of the same file: the slip is inside it ---------------------------------------------------------
def sigmoid_forward(xp, X, W1, W2, Y):
    h = X @ W1
    s = 1.0 / (1.0 + xp.exp(-h))
    Y_pred = s @ W2
    return xp.sum((Y_pred - Y) ** 2)


def _back_through_sigmoid(grad_s, s):
    grad_h = grad_s * s
    return grad_h


def helper_gradients(X, W1, W2, Y):
    s = 1.0 / (1.0 + np.exp(-(X @ W1)))
    grad_Y_pred = 2.0 * (s @ W2 - Y)
    grad_s = grad_Y_pred @ W2.T
    grad_h = _back_through_sigmoid(grad_s, s)
    return {"X": grad_h @ W1.T, "W1": X.T @ grad_h, "W2": s.T @ grad_Y_pred}


SIGMOID_SHAPES = {"X": ("N", "D_in"), "W1": ("D_in", "H"), "W2": ("H", "D_out"), "Y": ("N", "D_out")}
helper_slip = Derivation(name="helper_slip", shapes=SIGMOID_SHAPES, forward=sigmoid_forward, gradients=helper_gradients,
                         check=("X", "W1", "W2"))


# --- the wrong value built inside the return statement, one entry per line -----------------------------------
def return_gradients(X, W1, W2, Y):
    s = 1.0 / (1.0 + np.exp(-(X @ W1)))
    grad_Y_pred = 2.0 * (s @ W2 - Y)
    grad_s = grad_Y_pred @ W2.T
    grad_h = grad_s * s * (1.0 - s)
    return {
        "X": grad_h @ W1.T,
        "W1": X.T @ grad_s,
        "W2": s.T @ grad_Y_pred,
    }


return_slip = Derivation(name="return_slip", shapes=SIGMOID_SHAPES, forward=sigmoid_forward, gradients=return_gradients,
                         check=("X", "W1", "W2"))


# --- a torch.autograd.Function whose backward forgets a transpose's sign ----------------------------------------
def linear_forward(xp, X, W):
    return X @ W


class LinearBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W):
        ctx.save_for_backward(X, W)
        return X @ W

    @staticmethod
    def backward(ctx, G):
        X, W = ctx.saved_tensors
        grad_X = G @ W.T
        grad_W = -(X.T @ G)
        return grad_X, grad_W


function_slip = Derivation(name="function_slip", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=linear_forward,
                           gradients=LinearBackward, output=("N", "M"))


# --- a forward with no torch intermediates f depends on ---------------------------------------------------------
def sum_forward(xp, X):
    return xp.sum(X)


def sum_gradients(X):
    grad_X = -np.ones_like(X)
    return {"X": grad_X}


no_intermediates = Derivation(name="no_intermediates", shapes={"X": ("N",)}, forward=sum_forward, gradients=sum_gradients)


# --- two slips, found at different sizes: each gradient at its own line --------------------------------------
def square_forward(xp, X, W):
    return xp.sum((X @ W) ** 2)


def two_slips_gradients(X, W):
    r = 2.0 * (X @ W)
    grad_X = -(r @ W.T)
    grad_W = X[:2].T @ r[:2]
    return {"X": grad_X, "W": grad_W}


two_slips = Derivation(name="two_slips", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=square_forward, gradients=two_slips_gradients)


# --- code in the forward(...) -> (out, cache) / backward(dout, cache) convention, through the adapter ----------
def affine_forward(x, w):
    out = x @ w
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = dout @ w.T
    dw = 2.0 * x.T @ dout
    return dx, dw


adapter_slip = Derivation.from_forward_backward("adapter_slip", affine_forward, affine_backward, shapes={"x": ("N", "D"), "w": ("D", "M")})


# --- ReLU regression with ∂f/∂Y's sign slipped: the forward recomputed first (Z, S) is never the slip -----------
def relu_dY_forward(xp, X, W, Y):
    Z = X @ W
    S = Z * (Z > 0)
    return xp.sum((S - Y) ** 2)


def relu_dY_gradients(X, W, Y):
    Z = X @ W
    S = np.maximum(Z, 0.0)
    dS = 2 * (S - Y)
    dY = 2 * (S - Y)
    dZ = dS * (Z > 0)
    return {"W": X.T @ dZ, "X": dZ @ W.T, "Y": dY}


relu_dY = Derivation(name="relu_dY", shapes={"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")}, forward=relu_dY_forward,
                     gradients=relu_dY_gradients, kinks=lambda xp, X, W, Y: [X @ W])


# --- a gradient off by 1e-12 relative: failing, yet equal to ∂f/∂X within the matching tolerance ---------------
def near_forward(xp, X, W):
    h = X @ W
    return xp.sum(h**2)


def near_gradients(X, W):
    h = X @ W
    dh = 2 * h
    dh_safe = dh * (1 + 1e-12)
    return {"X": dh_safe @ W.T, "W": X.T @ dh}


near = Derivation(name="near", shapes={"X": ("N", "D"), "W": ("D", "M")}, forward=near_forward, gradients=near_gradients)
