"""How a point's hyperparameters, data inputs and forward seed read in every report: ``stride=1, pad=0``,
``y=[2, 0, 1]``, ``forward seed 5`` (the views put them after the sizes; JSON keeps them as values)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MAX_ENTRIES_SHOWN", "inputs_words"]

#: Entries of a data array written out in full; a larger one is summarised (its first and last entries).
MAX_ENTRIES_SHOWN = 32
#: Entries shown at each end of a summarised array's axes.
EDGE_ENTRIES = 3


def _value(v: Any) -> str:
    return repr(v.tolist() if isinstance(v, np.ndarray | np.generic) else v)


def array_text(value: Any) -> str:
    """A data array on one line: in full when small, else its shape and edge entries."""
    arr = np.asarray(value)
    text = np.array2string(arr, separator=", ", threshold=MAX_ENTRIES_SHOWN, edgeitems=EDGE_ENTRIES, max_line_width=10**6)
    text = " ".join(text.split())
    return text if arr.size <= MAX_ENTRIES_SHOWN else f"{text} (shape {arr.shape})"


def inputs_words(inputs: Mapping[str, Any]) -> list[str]:
    """The parts of a point's description for ``inputs`` ({"hyper", "data", "forward_seed"}; any may be missing)."""
    hyper, data, seed = inputs.get("hyper") or {}, inputs.get("data") or {}, inputs.get("forward_seed")
    parts = []
    if hyper:
        parts.append(", ".join(f"{k}={_value(v)}" for k, v in hyper.items()))
    if data:
        parts.append(", ".join(f"{k}={array_text(v)}" for k, v in data.items()))
    if seed is not None:
        parts.append(f"forward seed {seed}")
    return parts
