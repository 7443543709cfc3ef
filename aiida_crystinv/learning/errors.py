"""Errors of the learning layer that callers tell apart by type (both are ``ValueError``)."""

from __future__ import annotations

__all__ = ["TargetError", "TooFewRecordsError"]


class TargetError(ValueError):
    """Targets a model cannot learn: NaN / infinite values, or non-positive values where a
    log10 transform or a target weighting needs positive ones. The message names the record."""


class TooFewRecordsError(ValueError):
    """Fewer records than a split or an inner cross-validation needs."""
