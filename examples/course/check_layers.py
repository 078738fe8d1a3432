"""Check every backward of ``layers.py`` against its forward, declaring only how the layers are called.

    verigrad check examples/course/check_layers.py

The layers are pasted unchanged: NumPy forwards (``np.pad``, loops, in-place writes) returning
``(out, cache)``, and ``backward(dout, cache)``. What is declared here is the calling convention alone:
the shapes of the inputs (symbolic sizes, shared across inputs), the integer labels of the loss, and
the grids of ``conv_param``, ``pool_param`` and ``bn_param`` to search. Every configuration in a grid
is tried with the sizes; a failure names the one it was found at.
"""

from layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    conv_backward_naive,
    conv_forward_naive,
    lstm_step_backward,
    lstm_step_forward,
    max_pool_backward_naive,
    max_pool_forward_naive,
    relu_backward,
    relu_forward,
    softmax_loss,
)

from verigrad import Derivation, integers

#: Each (stride, pad) of the convolution; sizes keep H + 2·pad >= K at pad 0 (H, W from 3, K up to 3).
CONV = {
    "shapes": {"x": ("N", "C", "H", "W"), "w": ("F", "C", "K", "K"), "b": ("F",)},
    "hyper": {"conv_param": [{"stride": s, "pad": p} for s in (1, 2) for p in (1, 0)]},
    "dims": {"N": (1, 2), "C": (1, 2), "H": (3, 5), "W": (3, 5), "F": (1, 2), "K": (1, 3)},
}
#: Windows side by side (stride = size) and overlapping (stride < size).
POOL = {
    "shapes": {"x": ("N", "C", "H", "W")},
    "hyper": {
        "pool_param": [
            {"pool_height": 2, "pool_width": 2, "stride": 2},
            {"pool_height": 2, "pool_width": 2, "stride": 1},
            {"pool_height": 3, "pool_width": 3, "stride": 2},
        ]
    },
    "dims": {"N": (1, 2), "C": (1, 2), "H": (3, 6), "W": (3, 6)},
}

affine = Derivation.from_forward_backward("affine", affine_forward, affine_backward, shapes={"x": ("N", "A", "B"), "w": ("A*B", "M"), "b": ("M",)})
relu = Derivation.from_forward_backward("relu", relu_forward, relu_backward, shapes={"x": ("N", "D")})
batchnorm = Derivation.from_forward_backward(
    "batchnorm",
    batchnorm_forward,
    batchnorm_backward,
    shapes={"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)},
    hyper={"bn_param": [{"mode": "train"}, {"mode": "train", "eps": 1e-3, "momentum": 0.5}]},
)
conv = Derivation.from_forward_backward("conv", conv_forward_naive, conv_backward_naive, **CONV)
max_pool = Derivation.from_forward_backward("max_pool", max_pool_forward_naive, max_pool_backward_naive, **POOL)
softmax = Derivation.from_loss("softmax_loss", softmax_loss, shapes={"x": ("N", "C")}, data={"y": integers(0, "C", shape=("N",))})
lstm = Derivation.from_forward_backward(
    "lstm_step",
    lstm_step_forward,
    lstm_step_backward,
    outputs=2,
    shapes={"x": ("N", "D"), "prev_h": ("N", "H"), "prev_c": ("N", "H"), "Wx": ("D", "4*H"), "Wh": ("H", "4*H"), "b": ("4*H",)},
)
