"""Audit any descriptor for invariance and continuity, and a dataset's target and a
model for continuity. Pure numerics: no AiiDA import.

* :func:`invariance` -- the largest change of a descriptor under a diagonal and a
  non-diagonal supercell, a skewed unimodular change of basis, a rotation, an origin shift
  and a permutation of the atoms (``None`` = not comparable: the output shape changed);
* :func:`continuity` -- the change when every atom moves by at most eps, for a range of
  eps: ratios change / eps and the *jump factor* (largest ratio over the ratio at the
  largest eps; a Lipschitz descriptor stays near 1, a jump of size J at a small eps gives
  about J / eps_jump against J / eps_max);
* :func:`audit` -- both over a list of structures and descriptors, one row per descriptor;
* :func:`target_continuity` -- over the closest pairs of a labelled dataset, the threshold
  d and the empirical constant c with ``|dy| < c d`` for a stated fraction of the pairs
  closer than d;
* :func:`model_continuity` -- displace one atom by growing Gaussian noise and record a
  model's prediction next to an optional cheap truth (e.g. the Ewald energy).

Descriptors are anything :func:`aiida_crystinv.representations.get_descriptor` resolves.
"""

from ._core import (
    CONTINUITY_EPS,
    JUMP_FACTOR,
    TRANSFORMS,
    audit,
    continuity,
    format_table,
    invariance,
    perturb,
    transform,
)
from ._target import model_continuity, target_continuity

__all__ = [
    "TRANSFORMS",
    "CONTINUITY_EPS",
    "JUMP_FACTOR",
    "transform",
    "perturb",
    "invariance",
    "continuity",
    "audit",
    "format_table",
    "target_continuity",
    "model_continuity",
]
