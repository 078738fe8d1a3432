"""The derivation contract: the one object users write (see the glossary in ``analytic/__init__.py``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._adapters import from_forward_backward, from_layer, from_loss
from ._dims import SizeSpace, dim_value, hyper_base
from ._draws import check_draws, wrap_draws
from ._higher import function_jvp, has_own_jvp
from ._hyper import SEED_ARG, check_inputs, dims_named, space_of
from ._outputs import check_namespaces, output_parts, wrap_forward
from ._torch_function import function_gradients, is_torch_function
from ._tree import by_leaf, check_tree
from ._validate import (
    DEFAULT_DIM_RANGE,
    RESERVED_DIM,
    DerivationError,
    Dim,
    Shape,
    check_checked,
    check_dims,
    check_higher,
    check_name,
    check_output,
    check_ranges,
    check_signatures,
    dim_names,
    names_argument,
)

__all__ = ["DEFAULT_DIM_RANGE", "RESERVED_DIM", "Derivation", "DerivationError", "Dim", "Shape", "resolve"]


@dataclass(frozen=True, eq=False)
class Derivation:
    """A hand-derived gradient, with the forward it claims to differentiate.

    Required:
      name       unique, human-readable name (used in reports and replay commands).
      shapes     ``{param: (dim, ...)}``; a dim is a symbolic name shared across parameters
                 (``"N"``), a fixed int, or an expression of names (``"H-2"``, ``"4*H"``,
                 ``"(H+2*P-K)//S+1"``: ints, + - * //, parentheses). The names are the free
                 dims, drawn and shrunk by the search; an expression dim is computed from them,
                 and the free dims are drawn so that every dim is >= 1. A parameter may be a dict,
                 list or tuple of shapes (``{"parameters": {"Wax": ("n_a", "n_x"), ...}}``): each
                 leaf is a parameter named by its path (``parameters["Wax"]``), and the user's calls
                 are handed the structure (analytic/_tree.py).
      forward    ``forward(xp, **params)``: the objective, written once against the array
                 namespace ``xp`` (NumPy or torch). A scalar, or an array of shape ``output``.
      gradients  ``gradients(**params)`` (plus ``grad_output=G`` for a layer) returning
                 ``{param: ndarray}``: the hand-derived formulas, in NumPy. Or a
                 ``torch.autograd.Function`` subclass whose ``apply(*params)`` (in the order of
                 ``shapes``) computes the forward and whose ``backward`` is hand-written; it is
                 then ``torch_function`` and ``gradients`` calls its backward.

    Optional:
      output     ``None`` for a scalar objective; for a layer, the shape of ``forward``'s
                 output. Its gradients then receive the upstream gradient ``grad_output`` and
                 return ∂⟨G, forward⟩/∂param (the vector-Jacobian product). A derivation
                 whose gradients name ``grad_output`` is a layer even without ``output``: its
                 output shape is then read off the forward at each point. Several outputs: a
                 forward may return a tuple or a dict of arrays (an LSTM step's ``(next_h,
                 next_c)``); ``output`` is then a tuple or dict of shapes (or left out: read off
                 the forward), and ``grad_output`` comes in the same structure, each part drawn at
                 random: f = Σ_k ⟨G_k, out_k⟩ (analytic/_outputs.py).
      check      the parameters whose gradients are checked (default: all). Parameters not
                 listed are still drawn and passed; their gradients may be omitted. A leaf of a
                 structure is named by its path (``("parameters", "Wax")`` or its name), a whole
                 structure by its name; so are the keys of ``ranges`` and ``draws``.
      ranges     ``{param: (low, high)}``: draw that parameter uniformly in the range
                 (e.g. positive values for a log). Default: standard normal.
      draws      ``{param: positive() | spd() | simplex() | orthogonal()}``: draw that parameter
                 through a transform T of a standard normal z (analytic/_draws.py); forward and
                 gradients see T(z), the witnesses differentiate with respect to z, and the
                 user's ∂f/∂T(z) is carried to z by the transform's VJP (no chain rule asked).
      dims       ``{dim: (low, high)}``: inclusive size range of a free dim (default 1..8).
      kinks      ``kinks(xp, **params) -> [array, ...]``: switches of the forward, such as
                 ReLU pre-activations; where one is 0 the forward is not differentiable.
                 Used to keep random points away from kinks and to mark entries whose
                 finite-difference step crosses one.
      doc        one paragraph shown in reports; defaults to the forward's module docstring.
      namespaces ``("numpy",)`` or ``("torch",)``: the array namespaces the forward runs in
                 (default: found out by running it in each). A NumPy-only forward (``np.pad``,
                 in-place writes, ``np.add.at``) is checked against finite differences alone and
                 every report says autograd was not available; a torch-only one
                 (``torch.nn.functional``) gets finite differences in torch float64.
      torch_forward / numpy_forward
                 the same forward for the namespace ``forward`` cannot run in (``forward(xp,
                 **params)`` as well): each witness then runs the user's own code, and both are
                 checked to agree.
      data       ``{name: spec}``: inputs that are never differentiated, drawn per example by the
                 search (shrunk by hypothesis) and handed to forward, gradients and kinks by name:
                 ``integers(low, high, shape=...)`` ints in [low, high), a bound an int, a dim name
                 or a dim expression (``integers(0, "C", shape=("N",))`` for class labels);
                 ``booleans(shape, p=0.5)`` masks; ``one_hot(shape)`` float rows with one 1.0 on the
                 last axis; ``fixed(array)`` a given array (a copy per call). The points of one
                 example share its data. ``check(d, at={...})`` takes them as arrays (integer or
                 bool for integers/booleans). A data shape may introduce dims of its own.
      hyper      ``{name: [value, ...]}``: a grid per hyperparameter (numbers, strings, tuples,
                 dicts); each example takes one value of each (``sampled_from``, shrinking toward
                 the first), handed to every call by name. An int hyperparameter may appear in
                 dims (``"(H+2*pad-K)//stride+1"``); a configuration under which no sizes make every
                 dim >= 1 is never drawn. At ``at=`` a value may be given by name (default: the
                 first of its grid).
      seed       ``True``: forward and gradients (and kinks) also take ``seed=<int>``, one per
                 example, the same int in every call there, so a random forward (dropout) is a
                 function of the parameters at a point. Replayed with it (``forward_seed=`` in a
                 replay spec; ``seed=`` at ``at=``, default 0).
      grad_names ``{returned key: path}``: where a returned gradient goes when its key is neither a
                 parameter's name, a leaf's, nor found by the naming rule (``dWax`` for
                 ``parameters["Wax"]``, ``dxt`` for ``xt``: analytic/_tree.py); a path is a tuple of
                 keys (``("weights", 0)``), a leaf's name or a parameter's.
      hvp        ``hvp(v, **params)`` (plus ``grad_output=G`` for a layer) returning ``{param: array}``:
                 the hand-derived Hessian-vector product (H v)_p = Σ_q ∂²f/∂p∂q · v_q over the checked
                 parameters p, q, for a direction ``v = {q: array of q's shape}``. Checked against
                 autograd's double backward and the differences of ``gradients`` along v
                 (checks/verdict/second_order.py).
      jvp        ``jvp(v, **params)`` returning the directional derivative of the forward along
                 ``v``: a scalar, or J·v of the output's shape for a layer (no ``grad_output``).
                 Checked against torch's forward-mode AD and the differences of the forward along
                 v. A ``torch.autograd.Function`` given as ``gradients`` with its own ``jvp``
                 staticmethod gets this from it. Both take data and hyperparameters by name, as
                 ``gradients`` does (``hvp(v, w, X=..., y=...)``); not checked with ``seed=True``,
                 ``draws=``, dict/list parameters or several outputs (refused with one line).
      The hyperparameters, data and seed of a counterexample are in every report and in its replay
      command (``--replay "N=2,C=3,mode='train',y=[2,0],forward_seed=5,seed=7"``).

    Code in the usual conventions, pasted unchanged (analytic/_adapters.py):
    ``Derivation.from_forward_backward(name, forward, backward, shapes=..., outputs=1)`` for
    ``forward(x, w, b, conv_param) -> (out, cache)`` / ``backward(dout, cache) -> (dx, dw, db)``,
    ``Derivation.from_loss(name, loss, shapes=...)`` for ``loss(x, y) -> (loss, dx)``, and
    ``Derivation.from_layer(name, cls_or_instance, shapes=...)`` for a class with ``forward`` and
    ``backward`` methods. Arguments are matched by name to ``shapes``, ``data`` and ``hyper``.
    """

    name: str
    shapes: Mapping[str, Shape]
    forward: Callable[..., Any]
    gradients: Callable[..., Mapping[str, Any]]
    output: Shape | None = None
    check: Sequence[str] | None = None
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    dims: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    kinks: Callable[..., Sequence[Any]] | None = None
    doc: str = ""
    namespaces: Sequence[str] | None = None
    torch_forward: Callable[..., Any] | None = field(default=None, repr=False)
    numpy_forward: Callable[..., Any] | None = field(default=None, repr=False)
    data: Mapping[str, Any] = field(default_factory=dict)  # data inputs: analytic/_data.py
    hyper: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # hyperparameter grids: analytic/_hyper.py
    seed: bool = False
    draws: Mapping[str, Any] = field(default_factory=dict)  # parameters drawn through a transform: analytic/_draws.py
    grad_names: Mapping[str, Any] | None = field(default=None, repr=False)  # returned key -> path: analytic/_tree.py
    hvp: Callable[..., Mapping[str, Any]] | None = field(default=None, repr=False)  # second order: analytic/_validate.py
    jvp: Callable[..., Any] | None = field(default=None, repr=False)  # forward mode
    hyper_dims: tuple[str, ...] = field(default=(), init=False, repr=False)  # the hyperparameters dims name
    hyper_configs: tuple[Mapping[str, int], ...] = field(default=(), init=False, repr=False)  # their values some sizes allow
    bound: Any = field(default=None, init=False, repr=False)  # a bound derivation's Setting (analytic/_hyper.py)
    outputs: Any = field(default=None, init=False, repr=False)  # several outputs: analytic/_outputs.py
    torch_function: Any = field(default=None, init=False, repr=False)
    layer: bool = field(default=False, init=False, repr=False)
    space: SizeSpace = field(default=None, init=False, repr=False)  # type: ignore[assignment]
    tree: Any = field(default=None, init=False, repr=False)  # the parameters' structures: analytic/_tree.py

    def __post_init__(self) -> None:
        name = check_name(self.name)
        object.__setattr__(self, "name", name)
        shapes, tree = check_tree(name, self.shapes, self.grad_names)  # every leaf of a dict/list/tuple parameter
        object.__setattr__(self, "tree", tree)
        roots = list(tree.skeletons)
        object.__setattr__(self, "shapes", shapes)
        check_inputs(self, name)  # data=, hyper=, seed=
        declared = dims_named(self, list(shapes.values())) | set(self.hyper)
        outputs, output = output_parts(name, self.output)  # a tuple or dict of shapes: several outputs
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "output", check_output(name, output, declared))
        params = list(shapes)
        # A layer: an output shape is declared, or the gradients name grad_output (the output shape is then
        # read off the forward at each point's sizes).
        layer = self.output is not None or (callable(self.gradients) and names_argument(self.gradients, "grad_output"))
        object.__setattr__(self, "layer", layer)
        if is_torch_function(self.gradients):
            if tree.nested:
                raise DerivationError(name, "a torch.autograd.Function's apply takes arrays; for a dict or list parameter write gradients(...)")
            object.__setattr__(self, "torch_function", self.gradients)
            object.__setattr__(self, "gradients", function_gradients(self.gradients, params, self.output is not None))
        check_signatures(name, self.forward, self.gradients, roots, layer, self.input_names)
        extra = {"torch": self.torch_forward, "numpy": self.numpy_forward}
        object.__setattr__(self, "namespaces", check_namespaces(name, self.namespaces, extra))
        for fn in (self.torch_forward, self.numpy_forward):
            check_signatures(name, fn or self.forward, self.gradients, roots, layer, self.input_names)
        for role, value in by_leaf(self, name, tree).items():  # the user's code handed structures, returning its own names
            object.__setattr__(self, role, value)
        forward, gradients = wrap_forward(self, self.torch_forward, self.numpy_forward)  # one flat output; by namespace
        object.__setattr__(self, "forward", forward)
        object.__setattr__(self, "gradients", gradients)
        draws = check_draws(name, self.draws, shapes)
        object.__setattr__(self, "draws", draws)
        if draws:
            clash = sorted(set(draws) & set(self.ranges or {}))
            if clash:
                raise DerivationError(name, f"{', '.join(clash)} in both draws= and ranges=: a drawn parameter's values come from its transform")
            forward, gradients, kinks = wrap_draws(draws, self.forward, self.gradients, self.kinks if callable(self.kinks) else None)
            object.__setattr__(self, "forward", forward)
            object.__setattr__(self, "gradients", gradients)
            if kinks is not None:
                object.__setattr__(self, "kinks", kinks)
        object.__setattr__(self, "check", check_checked(name, self.check, params))
        if self.torch_function is not None and self.jvp is None and has_own_jvp(self.torch_function):
            object.__setattr__(self, "jvp", function_jvp(self.torch_function, params))
        check_higher(self, name)
        object.__setattr__(self, "ranges", check_ranges(name, self.ranges, params, list(self.data)))
        symbols = self.symbols
        dims = check_dims(name, self.dims, symbols)
        object.__setattr__(self, "dims", dims)
        every = [*shapes.values(), self.output or (), *(self.outputs.shapes if self.outputs else ())]
        object.__setattr__(self, "space", space_of(self, name, every, dims))
        if self.kinks is not None and not callable(self.kinks):
            raise DerivationError(name, "kinks must be callable or None")
        if not self.doc:
            mod = inspect.getmodule(self.forward)
            object.__setattr__(self, "doc", inspect.cleandoc(mod.__doc__) if mod and mod.__doc__ else "")
        if draws:
            said = "; ".join(d.formula(p) for p, d in draws.items())
            object.__setattr__(self, "doc", f"{self.doc}\n\nDrawn through a transform (reported entries are z's): {said}.".strip())

    # --- derived facts -------------------------------------------------------------------
    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The free (searched) dims in order of first appearance, the names inside expressions included."""
        seen: dict[str, None] = {}
        for shape in (*self.shapes.values(), self.output or ()):
            for d in dim_names(shape):
                seen.setdefault(d, None)
        for spec in self.data.values():
            for d in spec.names():
                seen.setdefault(d, None)
        return tuple(d for d in seen if hyper_base(d) not in self.hyper)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The arguments forward and gradients take besides the parameters: data, hyperparameters, ``seed``."""
        return (*self.data, *self.hyper, *((SEED_ARG,) if self.seed else ()))

    @property
    def has_inputs(self) -> bool:
        """Whether an example must bind data, hyperparameters or a seed before it is checked (``bind``)."""
        return self.bound is None and bool(self.data or self.hyper or self.seed)

    @property
    def expressions(self) -> tuple[str, ...]:
        """The dims written as expressions of other dims (``"H-2"``), computed from the free dims."""
        return tuple(self.space.expressions)

    @property
    def is_layer(self) -> bool:
        return self.layer

    def dim_range(self, dim: str) -> tuple[int, int]:
        """The sizes drawn for a free dim: its ``dims=`` range (default 1..8), without the values at which an
        expression dim could not be >= 1."""
        return self.space.ranges.get(dim, self.dims.get(dim, DEFAULT_DIM_RANGE))

    def valid_sizes(self, sizes: Mapping[str, int]) -> bool:
        """Whether every expression dim is >= 1 at ``sizes`` of the free dims."""
        return self.space.valid(sizes)

    def all_sizes(self, sizes: Mapping[str, int]) -> dict[str, int]:
        """The free dims' ``sizes`` followed by the value of each expression dim there."""
        return {**{d: int(sizes[d]) for d in self.symbols}, **{e: int(dim_value(e, sizes) or 0) for e in self.expressions}}

    def shape_of(self, param: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return resolve(self.shapes[param], sizes, self.name)

    def output_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The declared output shape at ``sizes``; DerivationError for a layer whose output is read off its forward."""
        if self.output is None and self.layer:
            raise DerivationError(self.name, "the output shape is not declared (output=); it is read off the forward")
        return resolve(self.output or (), sizes, self.name)

    def __repr__(self) -> str:
        return f"Derivation({self.name!r}, params={list(self.shapes)})"

    # --- code in the usual conventions, pasted unchanged (analytic/_adapters.py) ---------
    @classmethod
    def from_forward_backward(cls, name: str, forward: Callable[..., Any], backward: Callable[..., Any], **kw: Any) -> Derivation:
        """``forward(x, w, b, conv_param) -> (out, cache)`` and ``backward(dout, cache) -> (dx, dw, db)``: arguments
        matched by name to ``shapes``/``data``/``hyper``, the backward's tuple in the order of ``shapes``;
        ``outputs=2`` for ``(next_h, next_c, cache)`` and ``backward(dnext_h, dnext_c, cache)``; ``outputs=2,
        differentiated=(0,)`` for ``(a_next, yt_pred, cache)`` and ``backward(da_next, cache)``."""
        return from_forward_backward(cls, name, forward, backward, **kw)

    @classmethod
    def from_loss(cls, name: str, loss: Callable[..., Any], **kw: Any) -> Derivation:
        """``loss(x, y) -> (loss, dx)``: the scalar loss and the gradients of ``shapes`` in its order."""
        return from_loss(cls, name, loss, **kw)

    @classmethod
    def from_layer(cls, name: str, layer: Any, **kw: Any) -> Derivation:
        """A class (a fresh instance per call) or an instance (copied per call) with ``forward``/``backward``."""
        return from_layer(cls, name, layer, **kw)


def resolve(shape: Shape, sizes: Mapping[str, int], name: str = "?") -> tuple[int, ...]:
    """Concrete shape of a symbolic one given ``sizes`` for the free dims (expression dims are computed)."""
    out = []
    for d in shape:
        try:
            n = dim_value(d, sizes)
        except KeyError as e:
            raise DerivationError(name, f"no size given for dim {e.args[0]!r}") from None
        if n is None or n < 1:
            at = ", ".join(f"{k}={sizes[k]}" for k in sizes)
            raise DerivationError(name, f"dim {d!r} is {'undefined (// 0)' if n is None else n} at {at}; every size must be >= 1")
        out.append(n)
    return tuple(out)
