"""Small correct derivations the mutants are built on, besides the built-ins (glossary: ``analytic/__init__.py``).

    affine       layer  out = X W + 1 bᵀ           X:(N, D), W:(D, M), b:(M,), out:(N, M)
                 ∂f/∂X = G Wᵀ,  ∂f/∂W = Xᵀ G,  ∂f/∂b = 1ᵀ G
    tanh_layer   layer  out = tanh(X W + 1 bᵀ)     same shapes; with P = G ⊙ (1 − out²):
                 ∂f/∂X = P Wᵀ,  ∂f/∂W = Xᵀ P,  ∂f/∂b = 1ᵀ P
    bilinear     f = xᵀ A y                        x:(D,), A:(D, D), y:(D,)
                 ∂f/∂A = x yᵀ,  ∂f/∂x = A y,  ∂f/∂y = Aᵀ x
    quadratic    f = xᵀ A x                        x:(D,), A:(D, D)
                 ∂f/∂A = x xᵀ,  ∂f/∂x = (A + Aᵀ) x
    relu_gate    f = Σ max(A, 0) ⊙ C               A, C:(N, M)
                 ∂f/∂A = C ⊙ [A > 0],  ∂f/∂C = max(A, 0)
    mean_sq      f = (1/N) ‖X W − Y‖²_F            X:(N, D), W:(D, M), Y:(N, M)
                 ∂f/∂W = (2/N) Xᵀ (X W − Y),  ∂f/∂X = (2/N) (X W − Y) Wᵀ
    logistic     f = Σ log(1 + exp(−y ⊙ X w))      X:(N, D), w:(D,), y:(N,)
                 ∂f/∂w = −Xᵀ (y ⊙ σ(−y ⊙ X w))
    channel_gain f = ‖X diag(g)‖²_F                X:(N, 3), g:(3,) (three colour channels)
                 ∂f/∂X = 2 X diag(g²),  ∂f/∂g = 2 g ⊙ 1ᵀ(X ⊙ X)
    attention    layer  out = Q Kᵀ / √D             Q:(N, D), K:(M, D), out:(N, M)
                 ∂f/∂Q = G K / √D,  ∂f/∂K = Gᵀ Q / √D
    variance     f = Σ (x − x̄)² / (N − 1)          x:(N,), N ≥ 2 (the unbiased sample variance)
                 ∂f/∂x = 2 (x − x̄) / (N − 1)
    pointwise    layer  out[n,c,h,w] = Σ_d K[c,d] X[n,d,h,w] + b[c]   X:(N, D, H, W), K:(C, D), b:(C,) (a 1×1 conv)
                 ∂f/∂X = Σ_c G[n,c,h,w] K[c,d],  ∂f/∂K = Σ_{n,h,w} G X,  ∂f/∂b = Σ_{n,h,w} G[n,c,h,w]
    chan_affine  layer  out = γ[c] X[n,c,h,w] + β[c]   X:(N, C, H, W), γ, β:(C,) (batch norm's affine part)
                 ∂f/∂X = γ[c] G,  ∂f/∂γ = Σ_{n,h,w} G ⊙ X,  ∂f/∂β = Σ_{n,h,w} G
    softmax      layer  p = softmax(X) per row     X:(N, C), out:(N, C); Jacobian per row diag(p) − p pᵀ
                 ∂f/∂X = p ⊙ (G − (G ⊙ p) 1)  (row sums)
    log_softmax  layer  out = X − log Σ_c exp(X)   X:(N, C), C ≥ 2; Jacobian per row I − 1 pᵀ
                 ∂f/∂X = G − p ⊙ (G 1)
    smooth       layer  out[n,t] = (X[n,t] + X[n,t+1 mod T]) / 2   X:(N, T), T ≥ 2 (a circular moving average)
                 ∂f/∂X[n,s] = (G[n,s] + G[n,s−1 mod T]) / 2: each entry is read by two windows
    circ_conv    layer  out[n,t] = Σ_j w[j] X[n,t+j mod T]   X:(N, T), T ≥ 3, w:(3,) (a circular convolution)
                 ∂f/∂X[n,s] = Σ_j w[j] G[n,s−j mod T],  ∂f/∂w[j] = Σ_{n,t} G[n,t] X[n,t+j mod T]
    upsample     layer  out[n,l,k] = X[n,l], k < 2   X:(N, L), out:(N, L, 2) (nearest upsampling by 2, in blocks)
                 ∂f/∂X = Σ_k G[n,l,k]  (each block's sum)
    upsample2d   layer  out[n,h,i,w,j] = X[n,h,w], i, j < 2   X:(N, H, W), out:(N, H, 2, W, 2)
                 ∂f/∂X = Σ_{i,j} G[n,h,i,w,j]
    prefix_sum   layer  out[n,t] = Σ_{s≤t} X[n,s]   X:(N, T)
                 ∂f/∂X[n,t] = Σ_{s≥t} G[n,s]
    leaky        layer  h_t = h_{t−1}/2 + x_t, out[n,t] = h_t   X:(N, T) (a linear recurrence)
                 ∂f/∂X[n,t] = Σ_{s≥t} 2^{t−s} G[n,s]  (backpropagation through all later steps)
"""

import numpy as np

from verigrad import Derivation


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# Each objective: forward, correct gradients, and the Derivation's keyword arguments.
def affine_forward(xp, X, W, b):
    return X @ W + b


def affine_gradients(X, W, b, grad_output):
    G = grad_output
    return {"X": G @ W.T, "W": X.T @ G, "b": G.sum(axis=0)}


AFFINE = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, "forward": affine_forward, "output": ("N", "M")}


def tanh_forward(xp, X, W, b):
    return xp.tanh(X @ W + b)


def tanh_gradients(X, W, b, grad_output):
    P = grad_output * (1.0 - np.tanh(X @ W + b) ** 2)
    return {"X": P @ W.T, "W": X.T @ P, "b": P.sum(axis=0)}


TANH = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "b": ("M",)}, "forward": tanh_forward, "output": ("N", "M")}


def bilinear_forward(xp, x, A, y):
    return x @ A @ y


def bilinear_gradients(x, A, y):
    return {"A": np.outer(x, y), "x": A @ y, "y": A.T @ x}


BILINEAR = {"shapes": {"x": ("D",), "A": ("D", "D"), "y": ("D",)}, "forward": bilinear_forward}


def quadratic_forward(xp, x, A):
    return x @ A @ x


def quadratic_gradients(x, A):
    return {"A": np.outer(x, x), "x": (A + A.T) @ x}


QUADRATIC = {"shapes": {"x": ("D",), "A": ("D", "D")}, "forward": quadratic_forward}


def relu_gate_forward(xp, A, C):
    return xp.sum(A * (A > 0) * C)


def relu_gate_gradients(A, C):
    return {"A": C * (A > 0), "C": np.maximum(A, 0.0)}


RELU_GATE = {"shapes": {"A": ("N", "M"), "C": ("N", "M")}, "forward": relu_gate_forward, "kinks": lambda xp, A, C: [A]}


def mean_sq_forward(xp, X, W, Y):
    return xp.sum((X @ W - Y) ** 2) / X.shape[0]


def mean_sq_gradients(X, W, Y):
    r = X @ W - Y
    n = X.shape[0]
    return {"W": 2.0 / n * X.T @ r, "X": 2.0 / n * r @ W.T, "Y": -2.0 / n * r}


MEAN_SQ = {"shapes": {"X": ("N", "D"), "W": ("D", "M"), "Y": ("N", "M")}, "forward": mean_sq_forward}


def logistic_forward(xp, X, w, y):
    return xp.sum(xp.log(1.0 + xp.exp(-y * (X @ w))))


def logistic_gradients(X, w, y):
    z = X @ w
    return {"w": -X.T @ (y * sigmoid(-y * z)), "X": -np.outer(y * sigmoid(-y * z), w), "y": -z * sigmoid(-y * z)}


LOGISTIC = {"shapes": {"X": ("N", "D"), "w": ("D",), "y": ("N",)}, "forward": logistic_forward}


def channel_gain_forward(xp, X, g):
    return xp.sum((X * g) ** 2)


def channel_gain_gradients(X, g):
    return {"X": 2.0 * X * g**2, "g": 2.0 * g * (X * X).sum(axis=0)}


CHANNEL_GAIN = {"shapes": {"X": ("N", 3), "g": (3,)}, "forward": channel_gain_forward}

def attention_forward(xp, Q, K):
    return Q @ K.T / Q.shape[1] ** 0.5


def attention_gradients(Q, K, grad_output):
    d = Q.shape[1]
    return {"Q": grad_output @ K / np.sqrt(d), "K": grad_output.T @ Q / np.sqrt(d)}


ATTENTION = {"shapes": {"Q": ("N", "D"), "K": ("M", "D")}, "forward": attention_forward, "output": ("N", "M")}


def variance_forward(xp, x):
    return xp.sum((x - xp.mean(x)) ** 2) / (x.shape[0] - 1)


def variance_gradients(x):
    return {"x": 2.0 * (x - x.mean()) / (len(x) - 1)}


VARIANCE = {"shapes": {"x": ("N",)}, "forward": variance_forward, "dims": {"N": (2, 8)}}


def pointwise_forward(xp, X, K, b):
    return (K @ X.reshape(X.shape[0], X.shape[1], -1)).reshape(X.shape[0], K.shape[0], *X.shape[2:]) + b[:, None, None]


def pointwise_gradients(X, K, b, grad_output):
    G = grad_output
    return {"X": np.einsum("nchw,cd->ndhw", G, K), "K": np.einsum("nchw,ndhw->cd", G, X), "b": G.sum(axis=(0, 2, 3))}


POINTWISE = {"shapes": {"X": ("N", "D", "H", "W"), "K": ("C", "D"), "b": ("C",)}, "forward": pointwise_forward,
             "output": ("N", "C", "H", "W")}


def chan_affine_forward(xp, X, gamma, beta):
    return X * gamma[:, None, None] + beta[:, None, None]


def chan_affine_gradients(X, gamma, beta, grad_output):
    G = grad_output
    return {"X": G * gamma[:, None, None], "gamma": (G * X).sum(axis=(0, 2, 3)), "beta": G.sum(axis=(0, 2, 3))}


CHAN_AFFINE = {"shapes": {"X": ("N", "C", "H", "W"), "gamma": ("C",), "beta": ("C",)}, "forward": chan_affine_forward,
               "output": ("N", "C", "H", "W")}


def softmax_rows(X):
    e = np.exp(X - X.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_forward(xp, X):
    e = xp.exp(X)  # standard normal draws: no overflow to guard against
    return e / xp.sum(e, axis=1, keepdims=True)


def softmax_gradients(X, grad_output):
    p = softmax_rows(X)
    return {"X": p * (grad_output - (grad_output * p).sum(axis=1, keepdims=True))}


SOFTMAX = {"shapes": {"X": ("N", "C")}, "forward": softmax_forward, "output": ("N", "C")}


def log_softmax_forward(xp, X):
    return X - xp.log(xp.sum(xp.exp(X), axis=1, keepdims=True))


def log_softmax_gradients(X, grad_output):
    return {"X": grad_output - softmax_rows(X) * grad_output.sum(axis=1, keepdims=True)}


# C ≥ 2: with one class the output is log(exp(x)) − x, zero up to rounding, and f is rounding noise.
LOG_SOFTMAX = {"shapes": {"X": ("N", "C")}, "forward": log_softmax_forward, "output": ("N", "C"), "dims": {"C": (2, 8)}}


def _next(T):
    return [(t + 1) % T for t in range(T)]


def smooth_forward(xp, X):
    return (X + X[:, _next(X.shape[1])]) / 2.0


def smooth_gradients(X, grad_output):
    dX = np.zeros_like(X)
    for t in range(X.shape[1]):  # out[:, t] reads X[:, t] and X[:, t + 1 mod T]
        dX[:, t] += grad_output[:, t] / 2.0
        dX[:, (t + 1) % X.shape[1]] += grad_output[:, t] / 2.0
    return {"X": dX}


# T ≥ 2 (and T ≥ 3 for a window of three): below that the windows wrap onto themselves and none overlap.
SMOOTH = {"shapes": {"X": ("N", "T")}, "forward": smooth_forward, "output": ("N", "T"), "dims": {"T": (2, 8)}}


def circ_conv_forward(xp, X, w):
    T = X.shape[1]
    return sum(w[j] * X[:, [(t + j) % T for t in range(T)]] for j in range(3))


def circ_conv_gradients(X, w, grad_output):
    T = X.shape[1]
    dX = np.zeros_like(X)
    for t in range(T):
        for j in range(3):
            dX[:, (t + j) % T] += w[j] * grad_output[:, t]
    dw = np.array([(grad_output * X[:, [(t + j) % T for t in range(T)]]).sum() for j in range(3)])
    return {"X": dX, "w": dw}


CIRC_CONV = {"shapes": {"X": ("N", "T"), "w": (3,)}, "forward": circ_conv_forward, "output": ("N", "T"), "dims": {"T": (3, 8)}}


def upsample_forward(xp, X):
    return X[:, :, None][:, :, [0, 0]]


def upsample_gradients(X, grad_output):
    return {"X": grad_output.sum(axis=2)}


UPSAMPLE = {"shapes": {"X": ("N", "L")}, "forward": upsample_forward, "output": ("N", "L", 2)}


def upsample2d_forward(xp, X):
    return X[:, :, None, :, None][:, :, [0, 0], :, :][:, :, :, :, [0, 0]]


def upsample2d_gradients(X, grad_output):
    return {"X": grad_output.sum(axis=(2, 4))}


UPSAMPLE2D = {"shapes": {"X": ("N", "H", "W")}, "forward": upsample2d_forward, "output": ("N", "H", 2, "W", 2)}

def prefix_sum_forward(xp, X):
    return xp.stack([xp.sum(X[:, : t + 1], axis=1) for t in range(X.shape[1])], axis=1)


def prefix_sum_gradients(X, grad_output):
    return {"X": np.cumsum(grad_output[:, ::-1], axis=1)[:, ::-1]}


PREFIX_SUM = {"shapes": {"X": ("N", "T")}, "forward": prefix_sum_forward, "output": ("N", "T")}


def leaky_forward(xp, X):
    h, out = 0.0 * X[:, 0], []
    for t in range(X.shape[1]):
        h = 0.5 * h + X[:, t]
        out.append(h)
    return xp.stack(out, axis=1)


def leaky_gradients(X, grad_output):
    dX, carry = np.zeros_like(X), np.zeros(len(X))
    for t in reversed(range(X.shape[1])):  # ∂f/∂h_t = G_t + ∂f/∂h_{t+1} / 2
        carry = grad_output[:, t] + 0.5 * carry
        dX[:, t] = carry
    return {"X": dX}


LEAKY = {"shapes": {"X": ("N", "T")}, "forward": leaky_forward, "output": ("N", "T")}

CORRECT = [
    Derivation(name="affine", gradients=affine_gradients, **AFFINE),
    Derivation(name="tanh_layer", gradients=tanh_gradients, **TANH),
    Derivation(name="bilinear", gradients=bilinear_gradients, **BILINEAR),
    Derivation(name="quadratic", gradients=quadratic_gradients, **QUADRATIC),
    Derivation(name="relu_gate", gradients=relu_gate_gradients, **RELU_GATE),
    Derivation(name="mean_sq", gradients=mean_sq_gradients, **MEAN_SQ),
    Derivation(name="logistic", gradients=logistic_gradients, **LOGISTIC),
    Derivation(name="channel_gain", gradients=channel_gain_gradients, **CHANNEL_GAIN),
    Derivation(name="attention", gradients=attention_gradients, **ATTENTION),
    Derivation(name="variance", gradients=variance_gradients, **VARIANCE),
    Derivation(name="pointwise", gradients=pointwise_gradients, **POINTWISE),
    Derivation(name="chan_affine", gradients=chan_affine_gradients, **CHAN_AFFINE),
    Derivation(name="softmax", gradients=softmax_gradients, **SOFTMAX),
    Derivation(name="log_softmax", gradients=log_softmax_gradients, **LOG_SOFTMAX),
    Derivation(name="smooth", gradients=smooth_gradients, **SMOOTH),
    Derivation(name="circ_conv", gradients=circ_conv_gradients, **CIRC_CONV),
    Derivation(name="upsample", gradients=upsample_gradients, **UPSAMPLE),
    Derivation(name="upsample2d", gradients=upsample2d_gradients, **UPSAMPLE2D),
    Derivation(name="prefix_sum", gradients=prefix_sum_gradients, **PREFIX_SUM),
    Derivation(name="leaky", gradients=leaky_gradients, **LEAKY),
]
