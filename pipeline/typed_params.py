"""Typed parameter dataclasses built from loose ``key=value`` input.

Thresholds and hyperparameters arrive as strings (CLI ``--param k=v``, SageMaker's
``hyperparameters.json``, Processing-job arguments) or as numbers. One conversion keeps
their errors alike: an unknown key is refused by name with the known keys listed, and a
value that does not parse names the key and the type it should have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any], *, what: str) -> T:
    """Build dataclass ``cls`` from ``values``, converting each to its default's type.

    ``what`` names the kind of parameter in errors ("gate threshold", "hyperparameter").
    Ints accept ``"3.0"``; the dataclass's own ``__post_init__`` checks ranges.
    Raises ``ValueError`` for unknown keys and unparsable values.
    """
    known = [item.name for item in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    defaults = cls()
    converted: dict[str, Any] = {}
    for key, raw in values.items():
        default = getattr(defaults, key)
        if default is None:
            # An optional bound (None: not checked), otherwise a number.
            if raw is None or str(raw).strip().lower() in ("", "none", "null"):
                converted[key] = None
                continue
            default = 0.0
        kind = type(default)
        try:
            converted[key] = int(float(raw)) if kind is int else kind(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} {key}={raw!r} is not a valid {kind.__name__}") from exc
    return cls(**converted)
