"""A convolution backward that is wrong only at pad 0: the padding cropped off ∂x with ``pad:-pad``.

At pad 1 the slice ``[1:-1]`` is right; at pad 0 it is ``[0:-0]`` = ``[0:0]``, an empty gradient. Only a
search that tries pad 0 sees it:

    verigrad check examples/course/wrong_conv_pad.py
"""

import numpy as np
from check_layers import CONV
from layers import conv_forward_naive

from verigrad import Derivation


def conv_backward_naive(dout, cache):
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    N, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs : hs + HH, ws : ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs : hs + HH, ws : ws + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:-pad, pad:-pad]
    return dx, dw, db


conv_pad_slice = Derivation.from_forward_backward("conv_pad_slice", conv_forward_naive, conv_backward_naive, **CONV)
