"""Course backwards (examples/course/layers.py's convention: ``backward(dout, cache)``) with one wrong line each,
for tests/test_slip_course.py: the forwards run under NumPy only, so the slip is found against their
finite-difference intermediates. Each wrong line is found by its text."""

import numpy as np

from tests.course_layers import layers, max_pool_backward_assigns, relu_backward_wrong_mask
from verigrad import Derivation, integers


def affine_backward_sign(dout, cache):
    x, w, _ = cache
    dx = -dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def batchnorm_backward_sign(dout, cache):
    x_hat, gamma, std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    dx = (N * dx_hat - dx_hat.sum(axis=0) + x_hat * np.sum(dx_hat * x_hat, axis=0)) / (N * std)
    return dx, dgamma, dbeta


def batchnorm_backward_divides_gamma(dout, cache):
    x_hat, gamma, std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout / gamma
    dx = (N * dx_hat - dx_hat.sum(axis=0) - x_hat * np.sum(dx_hat * x_hat, axis=0)) / (N * std)
    return dx, dgamma, dbeta


def lstm_step_backward_output_gate(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * next_c
    dg = dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dprev_c = dc * f
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_step_backward_forget_gate(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * tanh_c
    dg = dc * i
    da = np.hstack([di * i * (1 - i), df * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dprev_c = dc * f
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def conv_backward_doubled_db(dout, cache):
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = 2 * np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs : hs + HH, ws : ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs : hs + HH, ws : ws + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


def softmax_loss_no_mean(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return loss, dx


def batchnorm_train(x, gamma, beta):
    return layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})


bn_train = Derivation.from_forward_backward("bn_train", batchnorm_train, layers.batchnorm_backward,
                                            shapes={"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)})

LSTM = {"outputs": 2, "shapes": {"x": ("N", "D"), "prev_h": ("N", "H"), "prev_c": ("N", "H"), "Wx": ("D", "4*H"), "Wh": ("H", "4*H"),
                                 "b": ("4*H",)}}
BN = {"shapes": {"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)}, "hyper": {"bn_param": [{"mode": "train"}]}}
CONV = {"shapes": {"x": ("N", "C", "H", "W"), "w": ("F", "C", "K", "K"), "b": ("F",)}, "hyper": {"conv_param": [{"stride": 1, "pad": 1}]},
        "dims": {"H": (3, 5), "W": (3, 5), "K": (1, 3)}}
POOL = {"shapes": {"x": ("N", "C", "H", "W")}, "hyper": {"pool_param": [{"pool_height": 2, "pool_width": 2, "stride": 1}]},
        "dims": {"H": (3, 6), "W": (3, 6)}}
fb = Derivation.from_forward_backward

#: (derivation, the failing parameter, the text of its wrong line)
CASES = {
    "affine_sign": (fb("affine_sign", layers.affine_forward, affine_backward_sign, shapes={"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}),
                    "x", "dx = -dout.dot(w.T)"),
    "relu_mask": (fb("relu_mask", layers.relu_forward, relu_backward_wrong_mask, shapes={"x": ("N", "D")}), "x", "dx[x > 0] = 0"),
    "batchnorm_sign": (fb("batchnorm_sign", layers.batchnorm_forward, batchnorm_backward_sign, **BN), "x",
                       "dx = (N * dx_hat - dx_hat.sum(axis=0) + x_hat"),
    "batchnorm_divides_gamma": (fb("batchnorm_divides_gamma", layers.batchnorm_forward, batchnorm_backward_divides_gamma, **BN), "x",
                                "dx_hat = dout / gamma"),
    "lstm_output_gate": (fb("lstm_output_gate", layers.lstm_step_forward, lstm_step_backward_output_gate, **LSTM), "x",
                         "do = dnext_h * next_c"),
    "lstm_forget_gate": (fb("lstm_forget_gate", layers.lstm_step_forward, lstm_step_backward_forget_gate, **LSTM), "x",
                         "da = np.hstack([di * i * (1 - i), df * (1 - f)"),
    "conv_db": (fb("conv_db", layers.conv_forward_naive, conv_backward_doubled_db, **CONV), "b", "db = 2 * np.sum(dout"),
    "max_pool_assigns": (fb("max_pool_assigns", layers.max_pool_forward_naive, max_pool_backward_assigns, **POOL), "x",
                         "dx[n, c, i * s + r, j * s + q] = dout[n, c, i, j]"),
    "softmax_no_mean": (Derivation.from_loss("softmax_no_mean", softmax_loss_no_mean, shapes={"x": ("N", "C")},
                                             data={"y": integers(0, "C", shape=("N",))}), "x", "dx[np.arange(N), y] -= 1"),
}
