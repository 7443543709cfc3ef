"""aiida-crystinv: isometry invariants of periodic crystals as provenance-tracked AiiDA processes.

The pure numerical layer (no AiiDA import) lives in :mod:`aiida_crystinv.invariants`,
:mod:`aiida_crystinv.distances` and :mod:`aiida_crystinv.learning`.
"""

__version__ = "0.1.0"
