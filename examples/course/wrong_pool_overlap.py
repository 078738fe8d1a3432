"""A max-pool backward that is wrong only when windows overlap: each window's gradient assigned, not added.

With stride = pool size every input entry lies in one window, so ``=`` and ``+=`` agree; with stride 1
a maximum shared by two windows keeps only the last window's gradient. Only a search that tries
overlapping windows sees it:

    verigrad check examples/course/wrong_pool_overlap.py
"""

import numpy as np
from check_layers import POOL
from layers import max_pool_forward_naive

from verigrad import Derivation


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    window = x[n, c, hs : hs + ph, ws : ws + pw]
                    mask = window == np.max(window)
                    dx[n, c, hs : hs + ph, ws : ws + pw] = mask * dout[n, c, i, j]
    return dx


max_pool_assigned = Derivation.from_forward_backward("max_pool_assigned", max_pool_forward_naive, max_pool_backward_naive, **POOL)
