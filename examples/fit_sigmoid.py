"""Fit y = x² + noise with a 1-20-1 sigmoid network twice: verigrad's analytic gradients vs torch autograd.

Both runs start from the same weights and take the same full-batch gradient steps on the mean squared
error, one with ``analytic.two_layer_sigmoid_mse``'s hand-derived gradients in NumPy, one with
``torch.nn.Linear`` layers, ``torch.nn.MSELoss`` and ``torch.optim.SGD``. Both work in float64, so
the two loss curves agree to rounding; the script prints their largest difference and saves a figure
with the data, both fits and both loss curves.

    python examples/fit_sigmoid.py                          # 200 steps, writes fit_sigmoid.png
    python examples/fit_sigmoid.py --steps 40 --out /tmp/fit.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # no display needed: the figure only goes to a file
import matplotlib.pyplot as plt
import numpy as np
import torch

from verigrad.analytic.two_layer_sigmoid import predict
from verigrad.analytic.two_layer_sigmoid_mse import forward, gradients

#: Points, hidden width, step size, noise amplitude: y = x² + NOISE · U(0, 1) on POINTS points in [−1, 1].
POINTS, HIDDEN, LEARNING_RATE, NOISE = 100, 20, 0.2, 0.2
#: Print both losses every this many steps (and at the last one).
PRINT_EVERY = 20
PARAMS = ("W1", "b1", "W2", "b2")
#: Initial scales (see initial_weights): slopes ~5 make each sigmoid switch over a width ~0.4, inside [−1, 1].
W1_SCALE, W2_SCALE = 5.0, 0.3


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, POINTS).reshape(-1, 1)
    return x, x**2 + NOISE * rng.uniform(0.0, 1.0, x.shape)


def initial_weights(seed: int) -> dict[str, np.ndarray]:
    """Weights in verigrad's layout W1:(1, H), b1:(H,), W2:(H, 1), b2:(1,).

    Each hidden unit is a soft step at a centre c ~ U(−1, 1) (b1 = −W1·c) with slope |W1| ~ 5·|N(0, 1)|,
    facing outwards (W1 has the sign of c): it is on only on the outer side of c, a soft hinge, the
    shape x² is made of. Units that are off on most of the data keep the output layer's curvature
    low enough for the step size 0.2; units facing both ways make the first steps overshoot.
    The output layer starts small: W2 ~ 0.3·N(0, 1), b2 = 0.
    """
    rng = np.random.default_rng(seed + 1)
    centres = rng.uniform(-1.0, 1.0, HIDDEN)
    W1 = (W1_SCALE * np.abs(rng.standard_normal(HIDDEN)) * np.sign(centres)).reshape(1, HIDDEN)
    return {"W1": W1, "b1": -W1[0] * centres, "W2": W2_SCALE * rng.standard_normal((HIDDEN, 1)), "b2": np.zeros(1)}


def train_analytic(x: np.ndarray, y: np.ndarray, weights: dict[str, np.ndarray], steps: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Full-batch gradient descent with the hand-derived gradients; returns losses and the fitted weights."""
    p = {k: v.copy() for k, v in weights.items()}
    losses = []
    for _ in range(steps):
        losses.append(float(forward(np, x, **p, Y=y)))
        grads = gradients(x, **p, Y=y)
        for k in PARAMS:
            p[k] -= LEARNING_RATE * grads[k]
    return np.array(losses), p


def train_torch(x: np.ndarray, y: np.ndarray, weights: dict[str, np.ndarray], steps: int) -> tuple[np.ndarray, torch.nn.Module]:
    """The same network as torch modules; nn.Linear stores its weight as (out, in), hence the transposes."""
    torch.manual_seed(0)  # the layers' own random init is overwritten below; keep it reproducible anyway
    model = torch.nn.Sequential(torch.nn.Linear(1, HIDDEN), torch.nn.Sigmoid(), torch.nn.Linear(HIDDEN, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(weights["W1"].T))
        model[0].bias.copy_(torch.from_numpy(weights["b1"]))
        model[2].weight.copy_(torch.from_numpy(weights["W2"].T))
        model[2].bias.copy_(torch.from_numpy(weights["b2"]))
    loss_fn = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(xt), yt)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return np.array(losses), model


def plot(path: str, x: np.ndarray, y: np.ndarray, fit_a: np.ndarray, fit_t: np.ndarray, loss_a: np.ndarray, loss_t: np.ndarray, gap: float) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    left.scatter(x, y, s=12, color="0.6", label="data: x² + 0.2·U(0, 1)")
    left.plot(x, fit_a, color="C0", lw=2.5, label="analytic gradients (NumPy)")
    left.plot(x, fit_t, color="C1", lw=1.5, ls="--", label="torch autograd (nn.Linear)")
    left.set(title="1-20-1 sigmoid network after training", xlabel="x", ylabel="y")
    left.legend(loc="upper center")
    steps = np.arange(len(loss_a))
    right.plot(steps, loss_a, color="C0", lw=2.5, label="analytic gradients")
    right.plot(steps, loss_t, color="C1", lw=1.5, ls="--", label="torch autograd")
    right.set(title=f"MSE loss (max |difference| = {gap:.1e})", xlabel="step", ylabel="MSE", yscale="log")
    right.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="gradient steps (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the initial weights (default 0)")
    parser.add_argument("--out", default="fit_sigmoid.png", help="where to save the figure (default fit_sigmoid.png)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    x, y = make_data(args.seed)
    weights = initial_weights(args.seed)
    loss_a, fitted = train_analytic(x, y, weights, args.steps)
    loss_t, model = train_torch(x, y, weights, args.steps)
    for step in range(args.steps):
        if step % PRINT_EVERY == 0 or step == args.steps - 1:
            print(f"step {step:4d}  analytic loss {loss_a[step]:.10f}  torch loss {loss_t[step]:.10f}")
    gap = float(np.max(np.abs(loss_a - loss_t)))
    print(f"max |analytic - torch| over the loss curves: {gap:.3e}")

    fit_a = predict(np, x, fitted["W1"], fitted["b1"], fitted["W2"], fitted["b2"])
    with torch.no_grad():
        fit_t = model(torch.from_numpy(x)).numpy()
    plot(args.out, x, y, fit_a, fit_t, loss_a, loss_t, gap)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
