"""A faster ``__init__`` for the frozen, slotted dataclasses built on every query.

A frozen dataclass stores each field through ``object.__setattr__`` (its own
``__setattr__`` refuses), which makes building one with a dozen fields cost several
microseconds, as much as a whole cache hit. ``fast_init`` swaps in an ``__init__`` with
the same signature that writes each slot through its descriptor: the instance is just
as frozen afterwards (assignment still raises), only construction is cheaper.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Class decorator, placed above ``@dataclass(frozen=True, slots=True)``."""
    namespace: dict[str, Any] = {}
    required: list[str] = []
    optional: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields are supported")
        if f.default is dataclasses.MISSING:
            required.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            optional.append(f"{f.name}=_default_{f.name}")
        namespace[f"_set_{f.name}"] = vars(cls)[f.name].__set__
        body.append(f"    _set_{f.name}(self, {f.name})")
    signature = ", ".join(["self", *required, *optional])
    source = f"def __init__({signature}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # noqa: S102 - built from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - mypy rejects assigning a method
    return cls
