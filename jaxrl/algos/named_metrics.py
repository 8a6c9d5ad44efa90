"""Metrics NamedTuples that read by field name too (``metrics["episode_return"]``)."""

from __future__ import annotations


def metrics_type(cls: type) -> type:
    """Let a metrics NamedTuple be read by field name too: ``metrics["episode_return"]``."""
    tuple_getitem = tuple.__getitem__

    def __getitem__(self, k):  # noqa: N807
        if isinstance(k, str):
            try:
                return getattr(self, k)
            except AttributeError:
                raise KeyError(k) from None
        return tuple_getitem(self, k)

    cls.__getitem__ = __getitem__
    cls.keys = lambda self: self._fields
    cls.items = lambda self: zip(self._fields, self, strict=True)
    return cls
