"""Property-based checks that a derivation's analytic gradients agree with autograd and finite differences.

Public surface: ``check`` (one derivation → ``Report``), ``assert_gradients``, the result model, and
the ``verigrad`` CLI (``checks.cli.main``). Everything else in this package is internal and may change.

The names are loaded on first use, so that importing the pytest plugin (``checks.pytest_plugin``,
loaded by every pytest run where verigrad is installed) does not import torch.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "REPORT_VERSION": "._model",
    "Diagnosis": "._model",
    "GradientReport": "._model",
    "Report": "._model",
    "RunReport": "._model",
    "Point": "._points",
    "draw_point": "._points",
    "check": "._search",
    "assert_gradients": "._assert",
}

__all__ = [  # resolved on first use by __getattr__
    "REPORT_VERSION",
    "Diagnosis",
    "GradientReport",
    "Point",
    "Report",
    "RunReport",
    "assert_gradients",
    "check",
    "draw_point",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'checks' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
