"""Argument checks shared by the ops wrappers and the data modules."""

import operator


def as_int(value, name: str) -> int:
    """``value`` as an int (anything with ``__index__``, not a bool); a TypeError that
    names the argument otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
