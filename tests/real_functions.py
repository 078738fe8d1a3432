"""Custom ``torch.autograd.Function``s of the kinds public packages ship, each with hand-written backward (and
where such packages have one, ``jvp``), and beside each the same Function with one planted mistake in its
backward: a wrong factor on one branch, a transposed term, a missing second-order term, a wrong ``jvp``.

Conventions of the backwards: ``g`` is the upstream gradient of the (first) output; a backward returns one
gradient per forward argument, ``None`` for non-tensor arguments and for inputs whose ``ctx.needs_input_grad``
is False. tests/test_gradcheck_real.py calls them as their own test suites would.
"""

import numpy as np
import torch
from torch.autograd.function import once_differentiable


class Sparsemax(torch.autograd.Function):
    """Euclidean projection of each row of z onto the probability simplex: p = max(z − τ(z), 0), Σ p = 1.

    Backward on the support S = {p > 0}: ∂f/∂z = 1_S ⊙ (g − (Σ_S g)/|S|) (the Jacobian is diag(1_S) − 1_S 1_Sᵀ/|S|).
    """

    @staticmethod
    def forward(ctx, z, dim=-1):
        zs, _ = torch.sort(z, dim=dim, descending=True)
        k = torch.arange(1, z.shape[dim] + 1, dtype=z.dtype, device=z.device)
        shape = [1] * z.dim()
        shape[dim] = -1
        k = k.view(shape)
        cums = zs.cumsum(dim)
        support = (1 + k * zs > cums).sum(dim=dim, keepdim=True)
        tau = (cums.gather(dim, support - 1) - 1) / support.to(z.dtype)
        p = torch.clamp(z - tau, min=0)
        ctx.dim = dim
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        s = (p > 0).to(g.dtype)
        mean = (g * s).sum(ctx.dim, keepdim=True) / s.sum(ctx.dim, keepdim=True)
        dz = s * (g - mean)
        return dz, None


class SparsemaxNoCentring(Sparsemax):
    """Planted: the mean over the support is taken over the whole row (a wrong factor 1/|S| → 1/n)."""

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        s = (p > 0).to(g.dtype)
        mean = (g * s).sum(ctx.dim, keepdim=True) / g.shape[ctx.dim]
        dz = s * (g - mean)
        return dz, None


class SmoothL1(torch.autograd.Function):
    """Huber / smooth-L1 loss, mean over entries: ℓ(d) = d²/(2β) for |d| < β, |d| − β/2 beyond, d = x − y.

    ∂f/∂x = g · clamp(d/β, −1, 1) / n, ∂f/∂y = −∂f/∂x; β is a float (its gradient None).
    """

    @staticmethod
    def forward(ctx, x, y, beta=1.0):
        d = x - y
        a = d.abs()
        loss = torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
        ctx.beta = beta
        ctx.save_for_backward(d)
        return loss.mean()

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        beta = ctx.beta
        inner = d / beta
        outer = torch.sign(d)
        dd = torch.where(d.abs() < beta, inner, outer)
        dx = g * dd / d.numel()
        return dx, -dx, None


class SmoothL1OuterBranchOff(SmoothL1):
    """Planted: the linear branch's slope is 2·sign(d), a wrong factor on one branch only."""

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        beta = ctx.beta
        inner = d / beta
        outer = 2 * torch.sign(d)
        dd = torch.where(d.abs() < beta, inner, outer)
        dx = g * dd / d.numel()
        return dx, -dx, None


class RMSNorm(torch.autograd.Function):
    """Fused RMS norm over the last dim: r = (mean(x²) + ε)^(−1/2), y = x r ⊙ w;  x:(N, D), w:(D,).

    ∂f/∂w = Σ_n g ⊙ x r;  with gw = g ⊙ w:  ∂f/∂x = r (gw − x r² mean(gw ⊙ x)).
    """

    @staticmethod
    def forward(ctx, x, w, eps=1e-6):
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, w, r)
        return x * r * w

    @staticmethod
    def backward(ctx, g):
        x, w, r = ctx.saved_tensors
        xhat = x * r
        gw = g * w
        dx = r * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        dw = (g * xhat).sum(0)
        return dx, dw, None


class RMSNormNoProjection(RMSNorm):
    """Planted: the projection term is taken with the raw x instead of x̂ (a term off by a factor r)."""

    @staticmethod
    def backward(ctx, g):
        x, w, r = ctx.saved_tensors
        xhat = x * r
        gw = g * w
        dx = r * (gw - xhat * (gw * x).mean(-1, keepdim=True))
        dw = (g * xhat).sum(0)
        return dx, dw, None


class LayerNorm(torch.autograd.Function):
    """Fused layer norm over the last dim: μ, σ² of each row, x̂ = (x − μ) r with r = (σ² + ε)^(−1/2),
    y = x̂ ⊙ w + b;  x:(N, D), w, b:(D,).

    ∂f/∂b = Σ_n g;  ∂f/∂w = Σ_n g ⊙ x̂;  with gw = g ⊙ w:  ∂f/∂x = r (gw − mean(gw) − x̂ mean(gw ⊙ x̂)).
    """

    @staticmethod
    def forward(ctx, x, w, b, eps=1e-5):
        mu = x.mean(-1, keepdim=True)
        r = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
        xhat = (x - mu) * r
        ctx.save_for_backward(xhat, w, r)
        return xhat * w + b

    @staticmethod
    def backward(ctx, g):
        xhat, w, r = ctx.saved_tensors
        gw = g * w
        dx = r * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))
        dw = (g * xhat).sum(0)
        db = g.sum(0)
        return dx, dw, db, None


class LayerNormNoMeanTerm(LayerNorm):
    """Planted: the term of the mean (− mean(gw)) left out of ∂f/∂x."""

    @staticmethod
    def backward(ctx, g):
        xhat, w, r = ctx.saved_tensors
        gw = g * w
        dx = r * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        dw = (g * xhat).sum(0)
        db = g.sum(0)
        return dx, dw, db, None


class Clamp(torch.autograd.Function):
    """clamp(x, lo, hi) with its gradient: g where lo < x < hi, 0 outside (lo, hi are floats)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        inside = (x > ctx.lo) & (x < ctx.hi)
        return g * inside.to(g.dtype), None, None


class ClampLeaksBelow(Clamp):
    """Planted: the gradient leaks through the lower bound (the mask tests x < hi only)."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        inside = x < ctx.hi
        return g * inside.to(g.dtype), None, None


class Swish(torch.autograd.Function):
    """swish(x) = x σ(x), saving x only: ∂f/∂x = g (σ + x σ (1 − σ)). The backward is written in torch ops of
    the saved input, so it is itself differentiable (double backward through autograd); ``jvp`` likewise."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * (s + x * s * (1 - s))

    @staticmethod
    def jvp(ctx, v):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return v * (s + x * s * (1 - s))


class SwishSavedSigmoid(Swish):
    """Planted (second order): σ(x) computed in the forward and saved — forward runs without a graph, so the
    backward's own backward misses the σ' term. First order it is right."""

    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return g * (s + x * s * (1 - s))


class SwishWrongJvp(Swish):
    """Planted (forward mode): the jvp forgets the x σ (1 − σ) term."""

    @staticmethod
    def jvp(ctx, v):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return v * s


class GeluTanh(torch.autograd.Function):
    """GELU, tanh approximation: y = x Φ̃(x), Φ̃ = (1 + tanh u)/2, u = c (x + 0.044715 x³), c = √(2/π).

    ∂f/∂x = g (Φ̃ + x (1 − tanh² u) c (1 + 3·0.044715 x²) / 2).
    """

    C, A = float(np.sqrt(2.0 / np.pi)), 0.044715

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        t = torch.tanh(GeluTanh.C * (x + GeluTanh.A * x**3))
        return 0.5 * x * (1 + t)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        t = torch.tanh(GeluTanh.C * (x + GeluTanh.A * x**3))
        du = GeluTanh.C * (1 + 3 * GeluTanh.A * x**2)
        dy = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
        return g * dy


class GeluTanhHalfSlope(GeluTanh):
    """Planted: the derivative of tanh taken as (1 − t) instead of (1 − t²)."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        t = torch.tanh(GeluTanh.C * (x + GeluTanh.A * x**3))
        du = GeluTanh.C * (1 + 3 * GeluTanh.A * x**2)
        dy = 0.5 * (1 + t) + 0.5 * x * (1 - t) * du
        return g * dy


class LinearBiasRelu(torch.autograd.Function):
    """Fused y = relu(x Wᵀ + b);  x:(N, D_in), W:(D_out, D_in), b:(D_out,). With h = x Wᵀ + b, dh = g ⊙ 1[h > 0]:
    ∂f/∂x = dh W;  ∂f/∂W = dhᵀ x;  ∂f/∂b = Σ_n dh."""

    @staticmethod
    def forward(ctx, x, W, b):
        h = x @ W.t() + b
        ctx.save_for_backward(x, W, h)
        return h.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        x, W, h = ctx.saved_tensors
        dh = g * (h > 0).to(g.dtype)
        dx = dh @ W if ctx.needs_input_grad[0] else None
        dW = dh.t() @ x if ctx.needs_input_grad[1] else None
        db = dh.sum(0) if ctx.needs_input_grad[2] else None
        return dx, dW, db


class LinearBiasReluTransposed(LinearBiasRelu):
    """Planted (square W): ∂f/∂W computed as xᵀ dh, the transpose of dhᵀ x."""

    @staticmethod
    def backward(ctx, g):
        x, W, h = ctx.saved_tensors
        dh = g * (h > 0).to(g.dtype)
        dx = dh @ W
        dW = x.t() @ dh
        db = dh.sum(0)
        return dx, dW, db


class LogSumExp(torch.autograd.Function):
    """log Σ_j exp(x_j) along ``dim`` (stable: shifted by the max); ∂f/∂x = g softmax(x) (recomputed from the saved
    input, so the backward is differentiable again); a gradient only where ``ctx.needs_input_grad`` asks for it."""

    @staticmethod
    def forward(ctx, x, dim):
        m = x.amax(dim, keepdim=True)
        out = (x - m).exp().sum(dim, keepdim=True).log() + m
        ctx.dim = dim
        ctx.save_for_backward(x)
        return out.squeeze(dim)

    @staticmethod
    def backward(ctx, g):
        if not ctx.needs_input_grad[0]:
            return None, None
        (x,) = ctx.saved_tensors
        return g.unsqueeze(ctx.dim) * torch.softmax(x, ctx.dim), None


class LogSumExpUnshifted(LogSumExp):
    """Planted: the softmax taken as exp(x − max) — right only where the max is 0 (a factor per row)."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        m = x.amax(ctx.dim, keepdim=True)
        return g.unsqueeze(ctx.dim) * (x - m).exp(), None


class TopK(torch.autograd.Function):
    """The k largest entries of each row and their indices; the indices are marked non-differentiable.
    ∂f/∂x scatters g into the positions taken, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, k):
        values, indices = torch.topk(x, k, dim=-1)
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        ctx.shape = x.shape
        return values, indices

    @staticmethod
    def backward(ctx, g_values, g_indices):
        (indices,) = ctx.saved_tensors
        dx = torch.zeros(ctx.shape, dtype=g_values.dtype, device=g_values.device)
        return dx.scatter(-1, indices, g_values), None


class TopKFirstOnly(TopK):
    """Planted: the gradient of the largest entry doubled (a wrong factor on one of the k positions)."""

    @staticmethod
    def backward(ctx, g_values, g_indices):
        (indices,) = ctx.saved_tensors
        scale = torch.ones_like(g_values)
        scale[..., 0] = 2
        dx = torch.zeros(ctx.shape, dtype=g_values.dtype, device=g_values.device)
        return dx.scatter(-1, indices, g_values * scale), None


class PolarToCartesian(torch.autograd.Function):
    """Two outputs (x, y) = (r cos θ, r sin θ), backward in NumPy (``once_differentiable``):
    ∂f/∂r = gx cos θ + gy sin θ;  ∂f/∂θ = r (gy cos θ − gx sin θ)."""

    @staticmethod
    def forward(ctx, r, theta):
        ctx.save_for_backward(r, theta)
        return r * torch.cos(theta), r * torch.sin(theta)

    @staticmethod
    @once_differentiable
    def backward(ctx, gx, gy):
        r, theta = (t.detach().cpu().numpy() for t in ctx.saved_tensors)
        gx, gy = gx.cpu().numpy(), gy.cpu().numpy()
        c, s = np.cos(theta), np.sin(theta)
        dr = gx * c + gy * s
        dtheta = r * (gy * c - gx * s)
        return torch.from_numpy(dr), torch.from_numpy(dtheta)


class PolarToCartesianSignSlip(PolarToCartesian):
    """Planted: ∂f/∂θ with the sign of its gx term flipped."""

    @staticmethod
    @once_differentiable
    def backward(ctx, gx, gy):
        r, theta = (t.detach().cpu().numpy() for t in ctx.saved_tensors)
        gx, gy = gx.cpu().numpy(), gy.cpu().numpy()
        c, s = np.cos(theta), np.sin(theta)
        dr = gx * c + gy * s
        dtheta = r * (gy * c + gx * s)
        return torch.from_numpy(dr), torch.from_numpy(dtheta)


class MaxPair(torch.autograd.Function):
    """Elementwise max(a, b); at a tie the gradient goes to a (the subgradient such ops take)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        pick_a = (a >= b).to(g.dtype)
        return g * pick_a, g * (1 - pick_a)


class KernelExp(torch.autograd.Function):
    """exp computed outside torch (a stand-in for a compiled kernel: NumPy here), saving its output: ∂f/∂x = g ⊙ y."""

    @staticmethod
    def forward(ctx, x):
        y = torch.from_numpy(np.exp(x.detach().cpu().numpy())).to(x.device)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class KernelExpDoubled(KernelExp):
    """Planted: a factor 2 in the backward of a forward torch cannot differentiate."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return 2 * g * y


class Cube(torch.autograd.Function):
    """x³ in the style with ``setup_context`` (forward without ctx): ∂f/∂x = 3 g x²."""

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * g * x * x


class CubeTwoForThree(Cube):
    """Planted: the power rule's factor written 2 instead of 3."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        square = x * x
        return 2 * g * square


class XCosKernel(torch.autograd.Function):
    """y = x cos x with cos x from outside torch (NumPy): autograd of the forward sees cos x as a constant, so
    only the finite differences know ∂f/∂x = g (cos x − x sin x)."""

    @staticmethod
    def forward(ctx, x):
        c = torch.from_numpy(np.cos(x.detach().cpu().numpy())).to(x.device)
        ctx.save_for_backward(x, c)
        return x * c

    @staticmethod
    def backward(ctx, g):
        x, c = ctx.saved_tensors
        return g * (c - x * torch.sin(x))


class XCosKernelSignSlip(XCosKernel):
    """Planted: the sign of the product rule's second term."""

    @staticmethod
    def backward(ctx, g):
        x, c = ctx.saved_tensors
        return g * (c + x * torch.sin(x))


class GeluTanhConstantTypo(GeluTanh):
    """Planted: a typo in one constant of the backward only (0.04715 for 0.044715): a slope off by well under 1%."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        t = torch.tanh(GeluTanh.C * (x + GeluTanh.A * x**3))
        du = GeluTanh.C * (1 + 3 * 0.04715 * x**2)
        dy = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
        return g * dy


class SoftmaxNormalizedInPlace(torch.autograd.Function):
    """Softmax along the last axis, normalized in place (``e /= e.sum()``): harmless inside a Function, whose forward
    runs without a graph, but autograd cannot differentiate the same operations (exp saved its output).

    Backward: ∂f/∂z = p ⊙ (g − Σ p g)."""

    @staticmethod
    def forward(ctx, z):
        e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
        e /= e.sum(dim=-1, keepdim=True)
        ctx.save_for_backward(e)
        return e

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * (g - (p * g).sum(dim=-1, keepdim=True))


class SoftmaxInPlaceNoCentring(SoftmaxNormalizedInPlace):
    """Planted: the Σ p g term left out."""

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * g


class CappedSimplexBisection(torch.autograd.Function):
    """Projection of each row onto {0 ≤ y ≤ 1, Σ y = budget}: y = clamp(x − τ, 0, 1) with τ found by bisection.

    The backward is the exact derivative of the projection: on the entries strictly between the caps,
    ∂f/∂x = g − mean(g over them); 0 elsewhere. Autograd through the iterations differentiates the bisection
    instead, which stops within a few ulps of τ: where every entry is capped (budget 0 or the row's length) its
    gradient is a few ulps of the upstream gradient, not 0."""

    ITERATIONS = 50

    @staticmethod
    def forward(ctx, x, budget):
        n = x.shape[-1]
        lo = x.min(dim=-1, keepdim=True).values - budget / n
        width = x.max(dim=-1, keepdim=True).values - budget / n - lo
        for _ in range(CappedSimplexBisection.ITERATIONS):
            width = width / 2
            mid = lo + width
            over = torch.clamp(x - mid, 0, 1).sum(dim=-1, keepdim=True) >= budget
            lo = torch.where(over, mid, lo)
        y = torch.clamp(x - lo, 0, 1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        free = ((y > 0) & (y < 1)).to(g.dtype)
        mean = (g * free).sum(dim=-1, keepdim=True) / free.sum(dim=-1, keepdim=True).clamp(min=1)
        return free * (g - mean), None


class CappedSimplexBisectionMeanOfAll(CappedSimplexBisection):
    """Planted: the mean taken over every entry of the row instead of the free ones."""

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        free = ((y > 0) & (y < 1)).to(g.dtype)
        return free * (g - g.mean(dim=-1, keepdim=True)), None


class Magnitude(torch.autograd.Function):
    """r = √(x² + y² + b²) − b, the gradients saved in the forward: ∂r/∂x = x/r, ∂r/∂y = y/r (of equal value
    wherever x = y, and of equal shape always)."""

    @staticmethod
    def forward(ctx, x, y, b):
        r = torch.sqrt(x**2 + y**2 + b**2)
        ctx.save_for_backward(x / r, y / r)
        return r - b

    @staticmethod
    def backward(ctx, g):
        drdx, drdy = ctx.saved_tensors
        dx = drdx * g
        dy = drdy * g
        return dx, dy, None


class MagnitudeSwapped(Magnitude):
    """Planted: ∂f/∂y computed from ∂r/∂x."""

    @staticmethod
    def backward(ctx, g):
        drdx, _drdy = ctx.saved_tensors
        dx = drdx * g
        dy = drdx * g
        return dx, dy, None


class SoftmaxCentredInPlace(torch.autograd.Function):
    """Softmax whose backward centres in place: dz = p ⊙ g, then dz −= p · Σ dz."""

    @staticmethod
    def forward(ctx, z):
        p = torch.softmax(z, dim=-1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        dz = p * g
        s = dz.sum(dim=-1, keepdim=True)
        dz -= p * s
        return dz


class SoftmaxCentredInPlaceDoubled(SoftmaxCentredInPlace):
    """Planted: the sum that centres it doubled."""

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        dz = p * g
        s = 2 * dz.sum(dim=-1, keepdim=True)
        dz -= p * s
        return dz


class ResidualLinear(torch.autograd.Function):
    """out = x W + x (a residual connection around a square linear map): ∂f/∂x = g Wᵀ + g, ∂f/∂W = xᵀ g."""

    @staticmethod
    def forward(ctx, x, W):
        ctx.save_for_backward(x, W)
        return x @ W + x

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        dx = g @ W.t()
        dx = dx + g
        return dx, x.t() @ g


class ResidualLinearUntransposed(ResidualLinear):
    """Planted: the linear map's term of ∂f/∂x without its transpose; the residual term added to it is right."""

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        dx = g @ W
        dx = dx + g
        return dx, x.t() @ g
