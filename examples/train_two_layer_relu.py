"""Train the two-layer ReLU network in NumPy with verigrad's verified gradients.

The gradients are ``analytic.two_layer_relu``'s, the same functions ``verigrad check two_layer_relu``
proves against torch autograd and finite differences. The objective is ‖Y − max(X W1, 0) W2‖²_F
(summed, not averaged), so with standard-normal data the loss starts in the tens of millions.

    python examples/train_two_layer_relu.py                  # 500 iterations, loss every 50
    python examples/train_two_layer_relu.py --iterations 60 --seed 3
"""

from __future__ import annotations

import argparse

import numpy as np

from verigrad.analytic.two_layer_relu import forward, gradients

#: Batch size, input, hidden and output widths.
N, D_IN, H, D_OUT = 64, 1000, 100, 10
#: Step size: the summed loss has gradients of order 1e5–1e6 at the start, so steps must be tiny.
LEARNING_RATE = 1e-6
#: Print the loss every this many iterations (and at the last one).
PRINT_EVERY = 50


def train(iterations: int, seed: int, learning_rate: float = LEARNING_RATE) -> list[float]:
    """Plain gradient descent on W1 and W2; returns the loss before each update."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D_IN))
    Y = rng.standard_normal((N, D_OUT))
    W1 = rng.standard_normal((D_IN, H))
    W2 = rng.standard_normal((H, D_OUT))
    losses = []
    for it in range(iterations):
        loss = float(forward(np, X, W1, W2, Y))
        losses.append(loss)
        if it % PRINT_EVERY == 0 or it == iterations - 1:
            print(f"iteration {it:4d}  loss {loss:.6e}")
        grads = gradients(X, W1, W2, Y)
        W1 -= learning_rate * grads["W1"]
        W2 -= learning_rate * grads["W2"]
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500, help="gradient steps (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the initial weights (default 0)")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations must be >= 1, got {args.iterations}")
    losses = train(args.iterations, args.seed)
    print(f"loss fell from {losses[0]:.6e} to {losses[-1]:.6e} in {args.iterations} iterations")


if __name__ == "__main__":
    main()
