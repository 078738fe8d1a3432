"""The one result model every report (terminal, JSON, Markdown, JUnit, HTML) is written from.

JSON schema (``REPORT_VERSION``), documented in the README:

    {"version": 1, "seed": int|null, "derivations": [Report.to_dict(), ...]}
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

import numpy as np

REPORT_VERSION = 1


class Status(StrEnum):
    """The verdict on a derivation or on one gradient."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # could not be checked (the forward raised, is not deterministic, timed out, ...)
    SKIP = "skip"  # not checked, on purpose: a skipped pytest item (the plugin's reports)


PASS, FAIL, ERROR, SKIP = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP


class Blame(StrEnum):
    """Which witness is at odds with the other two (per entry, then per gradient)."""

    ANALYTIC = "analytic"  # autograd ≈ finite differences, the hand-derived formula differs: the derivation is wrong
    # analytic ≈ autograd, the finite differences of the forward differ away from any kink, on a deterministic forward:
    # torch's graph is not the forward's function (a custom backward, a value taken out of the graph), and the analytic
    # gradient agrees with the graph only. A failure: the analytic side is judged against the function.
    GRAPH = "graph"
    AUTOGRAD = "autograd"  # analytic ≈ finite differences, autograd differs: the torch graph is the suspect (a warning)
    UNDETERMINED = "undetermined"  # no two agree: a failure


class Kind(StrEnum):
    """What kind of mistake a failing gradient shows (checks/diagnose)."""

    RAISED = "raised"
    KEPT_AXIS = "kept_axis"  # values right, with length-1 axes too many ((1, D) for (D,): a sum with keepdims)
    MISSING_BATCH_SUM = "missing_batch_sum"
    TRANSPOSE = "transpose"
    SHAPE_MISMATCH = "shape_mismatch"
    SIGN_FLIP = "sign_flip"
    SCALE = "scale"
    MISSING_SUM = "missing_sum"  # summed over some axes (the batch), not over others (a conv bias's spatial axes)
    JACOBIAN_DIAGONAL = "jacobian_diagonal"  # only the diagonal of the layer's Jacobian (softmax backward as p(1 − p))
    SUBSAMPLE = "subsample"  # one entry per block where the block's sum belongs (upsampling backward)
    ASSIGNMENT = "assignment"  # assigned (=) where overlapping windows must accumulate (+=)
    TRUNCATION = "truncation"  # right while a length is below some value, wrong beyond it (truncated backprop)
    PARTIAL = "partial"
    ASYMMETRIC = "asymmetric"  # a hand-derived Hessian whose block ∂²f/∂p∂q is not the transpose of ∂²f/∂q∂p
    MISSING_TERM = "missing_term"  # a symmetric Hessian off by a symmetric term (a second-order term left out); J·v without a tangent
    UNKNOWN = "unknown"


class Problem(StrEnum):
    """Why a failing gradient's values could not be compared entry by entry (None: they were)."""

    RAISED = "raised"  # the gradients function raised, or returned no dict; GradientReport.raised says which
    MISSING = "missing"  # no entry for the parameter
    DTYPE = "dtype"  # not a real floating-point (or integer) array
    SHAPE = "shape"  # another shape than the parameter's
    NON_FINITE = "non_finite"  # NaN/inf where the forward is finite


#: ``GradientReport.sigma`` where every entry passed with the rounding noise σ = 0 and σ was not measured.
NOISE_NOT_NEEDED = "not needed"


class Witness(StrEnum):
    """The exact witness an analytic gradient was judged against (finite differences confirm it, or stand alone)."""

    AUTOGRAD = "autograd"  # torch autograd, float64
    COMPLEX_STEP = "complex step"  # Im f(x + i·h·e_k)/h of a NumPy-only forward (reference/_complex_step.py)
    FINITE_DIFFERENCES = "finite differences"  # central differences alone: no exact witness was available


class Quantity(StrEnum):
    """What a GradientReport judges: the gradient ∂f/∂param (first order), the param block of a hand-derived
    Hessian-vector product, or a hand-written forward-mode J·v (checks/verdict/second_order.py)."""

    GRADIENT = "gradient"
    HVP = "hvp"
    JVP = "jvp"

    def title(self, param: str) -> str:
        """How views name it: ∂f/∂W1, (H·v)_W1, J·v (of one output: (J·v)_output1)."""
        if self == Quantity.JVP:
            return "J·v" if param == "output" else f"(J·v)_{param}"
        return f"(H·v)_{param}" if self == Quantity.HVP else f"∂f/∂{param}"


class Mode(StrEnum):
    """How finite differences confirm the references (see the README's speed section)."""

    AUTO = "auto"
    EXHAUSTIVE = "exhaustive"
    PROJECTION = "projection"


def _num(x: Any) -> Any:
    """JSON-safe float: NaN and ±inf become strings, numpy scalars become Python numbers."""
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def inputs_dict(hyper: dict[str, Any], data: dict[str, Any], forward_seed: int | None) -> dict[str, Any]:
    """Hyperparameters, data (as nested lists) and forward seed as JSON takes them (a tuple becomes a list)."""
    return {
        "hyper": {k: _plain(v) for k, v in hyper.items()},
        "data": {k: _plain(v) for k, v in data.items()},
        "forward_seed": forward_seed,
    }


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray | np.generic):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return _num(v)
    return v


def plain_data(value: Any) -> Any:
    """``value`` made of plain data only, as it crosses from a worker to the verdict process: None, bool, int,
    float, str, lists, tuples and dicts of them, and arrays of numbers (bool, int, float). A dataclass becomes the
    dict of its fields, a str, int or float of a subclass (a StrEnum member, say) its base value; an array of
    anything else becomes None (its gradient's verdict already says what it holds), and any other object its
    repr, so that nothing defined by the user's code is ever sent."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.ndarray):
        return np.array(value, subok=False) if value.dtype.kind in "biuf" else None
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind in "biuf" else None
    for base, exact in ((str, str.__str__), (int, int.__int__), (float, float.__float__)):
        if isinstance(value, base):
            return exact(value)  # the base type's own method: nothing of the subclass runs
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in fields(value) if f.metadata.get("plain", True)}
    if isinstance(value, Mapping):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        items = [plain_data(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    try:
        return repr(value)
    except Exception:  # user code: the object's __repr__
        return f"<{type(value).__name__} object>"


def _rebuilt(cls: type, plain: Mapping[str, Any], **convert: Callable[[Any], Any]) -> Any:
    """An instance of the dataclass ``cls`` from ``plain_data`` of one, each field through its converter."""
    same = lambda v: v
    return cls(**{f.name: convert.get(f.name, same)(plain[f.name]) for f in fields(cls) if f.name in plain})


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else convert(v)


@dataclass
class Point:
    """Where a derivation is checked: concrete sizes, parameter values and (for a layer) grad_output."""

    sizes: dict[str, int]
    params: dict[str, np.ndarray]
    grad_output: np.ndarray | None = None
    seed: int | None = None  # None: values given by the caller
    notes: list[str] = field(default_factory=list)
    # What the example was drawn with besides the sizes (analytic/_hyper.py): one value per hyperparameter, the
    # data inputs (the fixed ones left out) and the seed handed to a seeded forward and its gradients.
    hyper: dict[str, Any] = field(default_factory=dict)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    forward_seed: int | None = None


@dataclass
class Diagnosis:
    """What kind of mistake a failing gradient shows (see checks/diagnose/table.py)."""

    kind: Kind
    sentence: str  # one human sentence
    details: dict[str, Any] = field(default_factory=dict)  # e.g. scale_factor, fraction_wrong, pattern
    confirmed_on: int = 1  # number of examples at the counterexample's shapes that support it
    # Whether the sentence opens by naming the gradient ("∂f/∂W has …"), so a view need not name it again.
    # A question of wording only; not serialised.
    names_param: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sentence": self.sentence, **self.details, "confirmed_on": self.confirmed_on}


class Mark(StrEnum):
    """How one step of a traced derivation compares with the reference quantities (checks/diagnose/slip.py)."""

    RIGHT = "right"  # equals a reference quantity: a forward intermediate, or ∂f/∂ one of them
    WRONG = "wrong"  # the slip, or a step that inherits it on the way to the failing gradient
    UNCHECKED = "unchecked"  # equals no reference quantity (a partial product, say): neither right nor wrong


@dataclass
class TraceStep:
    """One step of a failing gradient's derivation trace: a line of the hand-derived gradients and what it matched."""

    file: str
    line: int
    source: str
    mark: Mark
    matched: str  # "∂f/∂h_sigmoid", "−1 × ∂f/∂Y_pred", "" when nothing

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "source": self.source, "mark": self.mark, "matched": self.matched}


@dataclass
class Slip:
    """The first wrong line of a derivation behind a failing gradient: wrong while the values it reads are right."""

    file: str
    line: int
    source: str
    finding: str  # what is wrong there: "is −1 × ∂f/∂Y_pred", ": ∂f/∂s used where ∂f/∂h belongs"
    own: bool = False  # the line computes this gradient's returned value itself (it does not inherit the slip)
    inherited_by: list[str] = field(default_factory=list)  # the failing gradients that inherit it
    elsewhere: bool = False  # the line is in another file than the derivation's gradients: the sentence names it

    @property
    def sentence(self) -> str:
        gap = "" if self.finding.startswith(":") else " "
        where = f" of {os.path.basename(self.file)}" if self.elsewhere else ""
        text = f"line {self.line}{where} `{self.source}`{gap}{self.finding}"
        if self.inherited_by:
            names = [f"∂f/∂{p}" for p in self.inherited_by]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            text += f"; {listed} inherit{'s' if len(names) == 1 else ''} it"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "source": self.source, "sentence": self.sentence}


@dataclass
class GradientReport:
    """The verdict on one parameter's gradient at the reported point."""

    param: str
    status: Status
    max_abs_err: float | None = None  # max |analytic − reference| over differentiable entries
    max_rel_err: float | None = None  # max_abs_err / max |reference|
    worst_index: tuple[int, ...] | None = None
    analytic_value: float | None = None  # at worst_index
    reference_value: float | None = None  # at worst_index
    threshold: dict[str, float] = field(default_factory=dict)  # thresholds applied (see docs/tolerances.md)
    blame: Blame | None = None
    mismatches: int = 0  # entries where the analytic gradient disagrees
    entries: int = 0
    nondifferentiable: list[tuple[int, ...]] = field(default_factory=list)
    decided_by_fd: list[tuple[int, ...]] = field(default_factory=list)  # autograd non-finite there
    diagnosis: Diagnosis | None = None
    dtype: str | None = None
    warnings: list[str] = field(default_factory=list)
    message: str | None = None  # for status error: one line
    problem: Problem | None = None  # set when the values could not be compared entry by entry
    witness: Witness = Witness.AUTOGRAD  # what the analytic gradient was judged against
    #: The smallest error it could have seen: the largest threshold applied to an entry, relative to max |reference|
    resolution: float | None = None
    witness_refused: str | None = None  # why the complex step was not the witness of a NumPy-only forward's gradient
    raised: str | None = None  # with Problem.RAISED: the exception, "TypeError: ..."
    quantity: Quantity = Quantity.GRADIENT  # first order, or a hand-derived H·v or J·v
    # Where the search found this gradient failing, its own smallest point: {"shapes": {...}, "seed": ..., "replay": "..."}
    # (a gradient that fails only at sizes where the others pass is reported there, not at the derivation's counterexample).
    counterexample: dict[str, Any] | None = None
    # Where a passing gradient's figures were taken, in the same form: the most demanding point the search judged it
    # at (checks/search/coverage.py). None: at the report's own point (a single point, a replay, a failing gradient).
    figures_at: dict[str, Any] | None = None
    # The first wrong line of the derivation (checks/diagnose/slip.py); None with ``slip_reason`` when none is named.
    slip: Slip | None = None
    slip_reason: str | None = None
    trace: list[TraceStep] = field(default_factory=list)  # the steps the returned value was computed from
    #: Whether the rounding noise σ entered τ_ex: NOISE_NOT_NEEDED where every entry passed with σ = 0 (a
    #: gradient that passes the tighter threshold passes the looser one), None where it was measured or none applies.
    sigma: str | None = None
    # Arrays at the point, for heatmaps; not serialised.
    analytic: np.ndarray | None = field(default=None, repr=False)
    reference: np.ndarray | None = field(default=None, repr=False)
    nondiff_mask: np.ndarray | None = field(default=None, repr=False)
    #: With ``sigma`` NOISE_NOT_NEEDED: the same verdict with σ measured, for a caller whose figures need it (the
    #: search's shown point, "nothing could be judged"). Lives in the process that judged it: never sent, never shown.
    remeasure: Callable[[], GradientReport] | None = field(default=None, repr=False, compare=False, metadata={"plain": False})

    #: Indices listed in JSON at most; the count is always given.
    MAX_LISTED = 100

    @property
    def title(self) -> str:
        """What it judges, as views name it: ∂f/∂W1, (H·v)_W1, J·v."""
        return self.quantity.title(self.param)

    def to_dict(self) -> dict[str, Any]:
        idx = lambda ix: [list(map(int, i)) for i in ix[: self.MAX_LISTED]]
        return {
            "param": self.param,
            "quantity": self.quantity,
            "status": self.status,
            "max_abs_err": _num(self.max_abs_err),
            "max_rel_err": _num(self.max_rel_err),
            "worst_index": None if self.worst_index is None else list(map(int, self.worst_index)),
            "analytic_value": _num(self.analytic_value),
            "reference_value": _num(self.reference_value),
            "threshold": {k: _num(v) for k, v in self.threshold.items()},
            "sigma": self.sigma,
            "blame": self.blame,
            "witness": self.witness,
            "resolution": _num(self.resolution),
            "witness_refused": self.witness_refused,
            "mismatches": self.mismatches,
            "entries": self.entries,
            "nondifferentiable": idx(self.nondifferentiable),
            "nondifferentiable_count": len(self.nondifferentiable),
            "decided_by_finite_differences": idx(self.decided_by_fd),
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "dtype": self.dtype,
            "warnings": list(self.warnings),
            "message": self.message,
            "counterexample": self.counterexample,
            "figures_at": self.figures_at,
            "slip": None if self.slip is None else self.slip.to_dict(),
            "slip_reason": self.slip_reason,
            "trace": [t.to_dict() for t in self.trace],
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> GradientReport:
        """The gradient's report from its ``plain_data`` (every field, the arrays included)."""
        return _rebuilt(
            cls,
            plain,
            status=Status,
            blame=_optional(Blame),
            problem=_optional(Problem),
            witness=Witness,
            quantity=Quantity,
            diagnosis=_optional(lambda d: _rebuilt(Diagnosis, d, kind=Kind)),
            slip=_optional(lambda d: _rebuilt(Slip, d)),
            trace=lambda steps: [_rebuilt(TraceStep, t, mark=Mark) for t in steps],
        )


@dataclass
class Report:
    """The verdict on one derivation: ``passed``, per-gradient results, and how to replay it."""

    name: str
    status: Status
    gradients: list[GradientReport] = field(default_factory=list)
    message: str | None = None  # one line, for status error (or the first failure's sentence)
    seed: int | None = None  # seed of the run (property search)
    shapes: dict[str, int] = field(default_factory=dict)  # sizes of the symbolic dims at the reported point
    point_seed: int | None = None  # seed the reported point's values were drawn from (None: given by the user)
    # {"shapes": {...}, "seed": ...}: the first failure the search found (each failing gradient has its own too)
    counterexample: dict[str, Any] | None = None
    examples: int = 0  # sizes the search tried (hypothesis examples); 1 for a single point
    points: int = 0  # points checked: several value draws at each size
    evaluations: int = 0  # forward evaluations spent by finite differences
    mode: Mode = Mode.EXHAUSTIVE
    replay: str | None = None  # one-line command that replays the reported point
    target: str | None = None  # what the CLI was given to find this derivation (builtin name or file)
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # Where the hand-derived gradients are written: {"file": absolute path, "line": first line} (CI annotations).
    location: dict[str, Any] | None = None
    # A forward that runs in one array namespace only ("numpy" or "torch"; None: both). Under NumPy alone autograd
    # is not available and finite differences are the only reference (checks/verdict/fd_only.py).
    namespace: str | None = None
    autograd_available: bool = True
    # The reported point's hyperparameters, data inputs and forward seed (Point's fields; empty/None without them).
    hyper: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    forward_seed: int | None = None
    # The arguments the hand-derived gradients wrote into at this point (judged all the same, on copies; each has
    # its warning in ``warnings``). The search carries them from every point it checked.
    modified_in_place: list[str] = field(default_factory=list)
    # The arguments the forward wrote into (judged all the same: every evaluation is handed copies; each has its
    # warning in ``warnings``), carried by the search as ``modified_in_place``.
    forward_modified_in_place: list[str] = field(default_factory=list)
    # The global random generators the code drew from ("numpy.random", "random", "torch"), each seeded from the
    # point's seed before every call (reference/_global_rng.py); each has its note in ``warnings``.
    global_generators: list[str] = field(default_factory=list)
    # A pytest item's node id (``test_mine.py::verigrad[my_relu]``) and the module-level variable bound to the
    # derivation (the plugin's reports; None under ``verigrad check``).
    node_id: str | None = None
    binding: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failures(self) -> list[GradientReport]:
        return [g for g in self.gradients if g.status != PASS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node_id": self.node_id,
            "binding": self.binding,
            "status": self.status,
            "message": self.message,
            "shapes": dict(self.shapes),
            "point_seed": self.point_seed,
            "counterexample": self.counterexample,
            "examples": self.examples,
            "points": self.points,
            "evaluations": self.evaluations,
            "mode": self.mode,
            "replay": self.replay,
            "duration_s": round(self.duration_s, 4),
            "warnings": list(self.warnings),
            "location": None if self.location is None else dict(self.location),
            "namespace": self.namespace,
            "autograd_available": self.autograd_available,
            "modified_in_place": list(self.modified_in_place),
            "forward_modified_in_place": list(self.forward_modified_in_place),
            "global_generators": list(self.global_generators),
            **inputs_dict(self.hyper, self.data, self.forward_seed),
            "gradients": [g.to_dict() for g in self.gradients],
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> Report:
        """The report a worker sent as ``plain_data(report)``: the same report, rebuilt in the verdict process."""
        return _rebuilt(cls, plain, status=Status, mode=Mode, gradients=lambda gs: [GradientReport.from_plain(g) for g in gs])


@dataclass
class RunReport:
    """Everything one run checked: the document the JSON report serialises."""

    reports: list[Report]
    seed: int | None = None
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        """Something was checked, and nothing failed or could not be checked (skipped entries aside)."""
        checked = [r for r in self.reports if r.status != SKIP]
        return bool(checked) and all(r.passed for r in checked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "seed": self.seed,
            "interrupted": self.interrupted,
            "derivations": [r.to_dict() for r in self.reports],
        }
