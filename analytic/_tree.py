"""Parameters that are a dict, list or tuple of arrays (a pytree, as torch.func and JAX call them).

``shapes={"xt": ("n_x", "m"), "parameters": {"Wax": ("n_a", "n_x"), "ba": ("n_a", 1)}}`` declares a parameter
``parameters`` that is a dict of two arrays; ``{"weights": [("D", "H"), ("H", "C")]}`` a list of two. A tuple
or list of dims is one shape; a tuple or list of shapes (or dicts) is a structure. At the Derivation's boundary
the structure is flattened into leaf parameters named by their path — ``parameters["Wax"]``, ``weights[1]`` — so
the witnesses, the search, the verdict and the reports work on flat named arrays, as for any other parameter.
The user's forward, gradients and kinks are handed the structure rebuilt from those leaves (the same arrays,
never copies, so a write into one is seen), and the gradients they return are flattened back:

* a key naming a parameter (``"xt"``, ``"parameters"``) gives its gradient in the parameter's own structure
  (a dict inside it may name its keys by the rule below and hold others, which are ignored; a key it leaves
  out is a leaf without gradient);
* a key naming a leaf (``'parameters["Wax"]'``) gives that leaf's;
* otherwise the naming rule: ``dP``, ``grad_P``, ``P_grad`` or ``d_P`` for a parameter P, or for a leaf whose
  last key P no other leaf shares (``dWax`` for ``parameters["Wax"]``, ``da_prev`` for ``a_prev``);
* ``grad_names={"dW1": ("weights", 0)}`` maps a returned key to a path (a tuple, a leaf's name or a parameter)
  where the rule does not reach.

A key that names a parameter or leaf outright wins over one found by the rule; other keys are ignored, as any
key the check does not ask for. The rule holds for every derivation: one without structures has a Tree too,
each parameter its own leaf.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._outputs import standing_for
from ._validate import RESERVED_ARGS, DerivationError, Shape, check_shape

__all__ = ["GRADIENT_NAMES", "Tree", "by_leaf", "check_tree", "flat_at", "leaf_name"]

#: How code names the gradient of a parameter P, tried in this order (backward dicts, a layer's attributes).
GRADIENT_NAMES = ("d{}", "grad_{}", "{}_grad", "d_{}")

Key = str | int
Path = tuple[Key, ...]  # the parameter's name, then the keys or indices down to the leaf


def leaf_name(path: Path) -> str:
    """The reported name of a leaf: ``parameters["Wax"]``, ``weights[1]``, or the parameter's name itself."""
    root, *keys = path
    return str(root) + "".join(f"[{json.dumps(k, ensure_ascii=False)}]" if isinstance(k, str) else f"[{k}]" for k in keys)


def _is_dim(spec: object) -> bool:
    return isinstance(spec, str | int) and not isinstance(spec, bool)


def _is_shape(spec: object) -> bool:
    if _is_dim(spec):
        return True
    return isinstance(spec, tuple | list) and not any(isinstance(d, tuple | list | Mapping) for d in spec)


def _kind(value: object) -> str:
    return "dict" if isinstance(value, Mapping) else type(value).__name__


def _describe(skeleton: object) -> str:
    if isinstance(skeleton, Mapping):
        return f"a dict with keys {', '.join(map(repr, skeleton))}"
    return f"a {type(skeleton).__name__} of {len(skeleton)}"  # type: ignore[arg-type]


def _walk(name: str, path: Path, spec: object, leaves: dict[str, tuple[Path, Shape]]) -> object:
    """The skeleton of ``spec`` (None at a leaf), its leaves added to ``leaves``; DerivationError naming the path."""
    where = leaf_name(path)
    if _is_shape(spec):
        leaves[where] = (path, check_shape(name, f"shape of {where!r}", spec))
        return None
    if isinstance(spec, Mapping):
        bad = [k for k in spec if not isinstance(k, str) or not k]
        if bad:
            raise DerivationError(name, f"{where} is a dict whose keys must be non-empty strings, got {bad[0]!r}")
        items: list[tuple[Key, object]] = list(spec.items())
    elif isinstance(spec, tuple | list):
        if any(_is_dim(d) for d in spec):
            raise DerivationError(name, f"{where} mixes dims and shapes ({spec!r}); give a tuple of dims, or a list or tuple of shapes")
        items = list(enumerate(spec))
    else:
        raise DerivationError(name, f"shape of {where!r} must be a tuple of dims, or a dict, list or tuple of shapes; got {spec!r}")
    if not items:
        raise DerivationError(name, f"{where} is an empty {_kind(spec)}: give each of its arrays a shape")
    skeleton = {k: _walk(name, (*path, k), s, leaves) for k, s in items}
    return skeleton if isinstance(spec, Mapping) else type(spec)(skeleton.values())


@dataclass(frozen=True)
class Tree:
    """The parameters' structure: each parameter's skeleton (None for one array), and every leaf's path."""

    skeletons: dict[str, object]
    paths: dict[str, Path]  # leaf name -> path, in the order of shapes
    aliases: dict[str, Path]  # a returned gradient's key -> the path it stands for (the rule, then grad_names=)

    @property
    def nested(self) -> bool:
        return any(s is not None for s in self.skeletons.values())

    def leaves_under(self, path: Path) -> list[str]:
        """The leaves at or below ``path``."""
        return [n for n, p in self.paths.items() if p[: len(path)] == path]

    def structured(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The flat leaves of ``kwargs`` put back in their structures (the same objects); other arguments as given."""
        if not self.nested:
            return dict(kwargs)
        out = {k: v for k, v in kwargs.items() if len(self.paths.get(k, ())) < 2}  # all but the leaves of structures
        for root, skeleton in self.skeletons.items():
            if skeleton is not None and all(n in kwargs for n in self.leaves_under((root,))):
                out[root] = _build(skeleton, (root,), kwargs)
        return out

    def flat(self, root: str, value: Any, what: str, loose: bool = False) -> dict[str, Any]:
        """``value``, given for the parameter ``root``, as leaves; ValueError naming the first difference of structure
        (``loose``: as returned gradients are read, see ``_flatten``)."""
        return _flatten(self.skeletons[root], (root,), value, what, loose)

    def gradients(self, returned: Mapping[str, Any]) -> dict[str, Any]:
        """The returned gradients by leaf name (see the module docstring); ValueError for a parameter's gradient
        in another structure."""
        out: dict[str, Any] = {}
        later: list[tuple[Path, Any]] = []
        for key, value in returned.items():
            if self.skeletons.get(key) is None and key in self.paths:  # one array: its own leaf
                if out.get(key) is None:
                    out[key] = value
            elif key in self.paths or key in self.skeletons:
                _fill(out, self.flat(key, value, "gradients returned", loose=True) if key in self.skeletons else {key: value})
            elif key in self.aliases:
                later.append((self.aliases[key], value))
            else:
                out[key] = value
        for path, value in later:
            _fill(out, _flatten(_skeleton_at(self.skeletons, path), path, value, "gradients returned", loose=True))
        return out


def _fill(out: dict[str, Any], got: Mapping[str, Any]) -> None:
    """``got`` into ``out`` where ``out`` has no gradient yet: a value given once is never replaced."""
    out.update({n: v for n, v in got.items() if out.get(n) is None})


def _build(skeleton: object, path: Path, kwargs: Mapping[str, Any]) -> Any:
    if skeleton is None:
        return kwargs[leaf_name(path)]
    if isinstance(skeleton, Mapping):
        return {k: _build(s, (*path, k), kwargs) for k, s in skeleton.items()}
    return type(skeleton)(_build(s, (*path, i), kwargs) for i, s in enumerate(skeleton))  # type: ignore[arg-type]


def _renamed(value: Mapping[Any, Any], skeleton: Mapping[str, object]) -> dict[Any, Any]:
    """A returned dict's keys as the declared ones they name by the rule (``dW1`` for ``W1``)."""
    out = dict(value)
    for k in skeleton:
        said = next((pattern.format(k) for pattern in GRADIENT_NAMES if pattern.format(k) in out), None)
        if k not in out and said is not None:
            out[k] = out.pop(said)
    return out


def _flatten(skeleton: object, path: Path, value: Any, what: str, loose: bool = False) -> dict[str, Any]:
    """``value`` as leaves of ``skeleton``; ValueError naming the first difference. ``loose`` (returned gradients): a
    dict's keys may follow the naming rule (``{"dW1": ...}`` for ``{"W1": ...}``), its other keys are ignored, and a
    key it leaves out is a leaf without gradient (as a key left out of the returned dict)."""
    if skeleton is None:
        return {leaf_name(path): value}
    where = leaf_name(path)
    if loose and value is None:  # no gradient for any leaf below: each is missing, as an omitted key is
        return {leaf: None for leaf in _leaves(skeleton, path)}
    if isinstance(skeleton, Mapping):
        value = _renamed(value, skeleton) if loose and isinstance(value, Mapping) else value
        fits = isinstance(value, Mapping) and (loose or set(value) == set(skeleton))
    else:
        fits = isinstance(value, tuple | list) and len(value) == len(skeleton)  # type: ignore[arg-type]
    if not fits:
        got = _describe(value) if isinstance(value, Mapping | tuple | list) else type(value).__name__
        raise ValueError(f"{what} {where} as {got}; shapes declares {_describe(skeleton)}")
    keys = list(skeleton) if isinstance(skeleton, Mapping) else range(len(skeleton))  # type: ignore[arg-type]
    subs = skeleton.values() if isinstance(skeleton, Mapping) else skeleton  # type: ignore[union-attr]
    out: dict[str, Any] = {}
    for k, s in zip(keys, subs, strict=True):
        out.update(_flatten(s, (*path, k), value.get(k) if loose and isinstance(value, Mapping) else value[k], what, loose))
    return out


def _leaves(skeleton: object, path: Path) -> list[str]:
    if skeleton is None:
        return [leaf_name(path)]
    pairs = skeleton.items() if isinstance(skeleton, Mapping) else enumerate(skeleton)  # type: ignore[arg-type]
    return [leaf for k, s in pairs for leaf in _leaves(s, (*path, k))]


def _skeleton_at(skeletons: Mapping[str, object], path: Path) -> object:
    node: Any = skeletons[path[0]]
    for k in path[1:]:
        node = node[k]
    return node


def _rule(paths: Mapping[str, Path], skeletons: Mapping[str, object]) -> dict[str, Path]:
    """The naming rule's aliases: dP (and grad_P, P_grad, d_P) for each parameter P and each leaf whose last
    key P is its own; an alias two targets share, or that is itself a parameter's or a leaf's name, is left out."""
    targets: dict[str, list[Path]] = {}
    keyed = [p for p in paths.values() if len(p) > 1 and isinstance(p[-1], str)]  # a list's leaves have no name of their own
    last = [p[-1] for p in keyed]
    named = [(root,) for root in skeletons] + [p for p in keyed if last.count(p[-1]) == 1]
    for path in named:
        for pattern in GRADIENT_NAMES:
            targets.setdefault(pattern.format(path[-1]), []).append(path)
    taken = set(paths) | set(skeletons)
    return {alias: ps[0] for alias, ps in targets.items() if len(ps) == 1 and alias not in taken}


def _is_key(k: object) -> bool:
    """A dict's key or a list's index (>= 0) as a path may hold it."""
    return isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool) and k >= 0)


def _target(tree_paths: Mapping[str, Path], skeletons: Mapping[str, object], target: object) -> Path | None:
    """A path given as a tuple of keys, a leaf's name or a parameter's name; None if it names nothing declared."""
    if isinstance(target, str):
        if target in skeletons:
            return (target,)
        return tree_paths.get(target)
    if isinstance(target, tuple | list) and target and isinstance(target[0], str) and all(map(_is_key, target[1:])):
        try:
            _skeleton_at(skeletons, tuple(target))
        except (KeyError, IndexError, TypeError):
            return None
        return tuple(target)
    return None


def check_tree(name: str, shapes: object, grad_names: object = None) -> tuple[dict[str, Shape], Tree]:
    """(every leaf's shape by its name, the structure) of ``shapes``, with ``grad_names=`` read; DerivationError
    naming the derivation and the first problem."""
    if not isinstance(shapes, Mapping) or not shapes:
        raise DerivationError(name, "shapes must be a non-empty mapping {param: (dim, ...)}")
    leaves: dict[str, tuple[Path, Shape]] = {}
    skeletons: dict[str, object] = {}
    for param, spec in shapes.items():
        if not isinstance(param, str) or not param.isidentifier() or param in RESERVED_ARGS:
            raise DerivationError(name, f"parameter name {param!r} must be a Python identifier other than 'xp' and 'grad_output'")
        skeletons[param] = _walk(name, (param,), spec, leaves)
    paths = {n: p for n, (p, _) in leaves.items()}
    aliases = _rule(paths, skeletons)
    if grad_names is not None:
        if not isinstance(grad_names, Mapping):
            raise DerivationError(name, f"grad_names= must be a dict {{returned key: path}}, got {type(grad_names).__name__}")
        for key, target in grad_names.items():
            path = _target(paths, skeletons, target)
            if not isinstance(key, str) or path is None:
                raise DerivationError(name, f"grad_names[{key!r}] = {target!r} names no declared parameter or leaf; paths are {', '.join(paths)}")
            aliases[key] = path
    return {n: s for n, (_, s) in leaves.items()}, Tree(skeletons, paths, aliases)


def expand(name: str, tree: Tree, what: str, entries: Sequence[object]) -> list[str]:
    """Leaf names for ``entries`` of ``check=`` (or the keys of ``ranges=``/``draws=``): a parameter's name stands for
    its leaves, a tuple path or a leaf's name for that leaf (or those below it); anything else stays as written,
    for the field's own check to name."""
    out: list[str] = []
    for entry in entries:
        path = _target(tree.paths, tree.skeletons, entry) if isinstance(entry, str | tuple | list) else None
        if path is None:
            if isinstance(entry, tuple | list):
                known = ", ".join(tree.paths)
                raise DerivationError(name, f"{what} names {leaf_name(tuple(entry))}, which shapes does not declare; paths are {known}")
            out.append(entry)  # type: ignore[arg-type]
        else:
            out += tree.leaves_under(path)
    return out


def wrap_tree(tree: Tree, fn: Callable[..., Any] | None, *, gradients: bool = False) -> Callable[..., Any] | None:
    """``fn`` called with its parameters in their structures, from the flat leaves the witnesses hand it; the
    gradients it returns (``gradients``) by leaf name."""
    if fn is None:
        return None

    def call(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **tree.structured(kwargs))
        return tree.gradients(out) if gradients and isinstance(out, Mapping) else out

    return standing_for(call, fn)


def _leaf_keyed(name: str, tree: Tree, what: str, given: object) -> object:
    """``given`` (``ranges=`` or ``draws=``) keyed by leaf names: a parameter's entry given to each of its leaves."""
    if not isinstance(given, Mapping):
        return given  # the field's own check names the problem
    return {leaf: value for key, value in given.items() for leaf in expand(name, tree, what, [key])}


def by_leaf(d: Any, name: str, tree: Tree) -> dict[str, Any]:
    """The fields of the derivation ``d`` being built that change with its structures: its calls, handed the
    structures rebuilt from the leaves (the gradients' returned names read too), and ``check=``, ``ranges=`` and
    ``draws=`` naming leaves."""
    out: dict[str, Any] = {"gradients": wrap_tree(tree, d.gradients, gradients=True)}
    if not tree.nested:
        return out
    for role in ("forward", "torch_forward", "numpy_forward", "kinks"):
        fn = getattr(d, role)
        out[role] = wrap_tree(tree, fn) if callable(fn) else fn
    if d.check is not None and not isinstance(d.check, str):
        out["check"] = expand(name, tree, "check", list(d.check))
    out["ranges"] = _leaf_keyed(name, tree, "ranges", d.ranges)
    out["draws"] = _leaf_keyed(name, tree, "draws", d.draws)
    return out


def flat_at(derivation: Any, at: Mapping[str, Any]) -> dict[str, Any]:
    """``at`` (``check(d, at=...)``) with each structured parameter given as its leaves; ValueError naming the
    first difference from the declared structure."""
    tree: Tree | None = getattr(derivation, "tree", None)
    if tree is None or not tree.nested:
        return dict(at)
    out: dict[str, Any] = {}
    for key, value in at.items():
        if tree.skeletons.get(key) is not None:
            out.update(tree.flat(key, value, "at: gives"))
        else:
            out[key] = value
    return out
