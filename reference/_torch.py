"""torch, imported where a check first needs it rather than where verigrad is imported.

Importing torch takes a second or more. verigrad is imported by every pytest run in an environment
where it is installed (its plugin loads through the ``pytest11`` entry point), by ``verigrad list`` and
by ``verigrad --help``: none of them needs torch. A reference module binds ``torch`` to a ``Deferred``
instead; its first attribute access imports torch and puts the module itself in the place of the
``Deferred``, so that every later access in that module is a plain global lookup.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

__all__ = ["Deferred", "torch_namespace"]


class Deferred:
    """Module ``name``, bound under its own name in the globals ``namespace``, until an attribute is first read."""

    __slots__ = ("_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any]) -> None:
        self._name, self._namespace = name, namespace

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._name) is self:
            self._namespace[self._name] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


@functools.cache
def torch_namespace() -> ModuleType:
    """array-api-compat's torch namespace: the ``xp`` a forward is handed when it runs under torch."""
    return importlib.import_module("array_api_compat.torch")
