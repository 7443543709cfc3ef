"""WorkChains of aiida-crystinv.

* :class:`InvariantsWorkChain` (``crystinv.invariants``) -- invariants of a dataset in
  parallel chunks, merged into one node
"""

from .invariants import InvariantsChunkWorkChain, InvariantsWorkChain, launch_invariants

__all__ = ["InvariantsWorkChain", "InvariantsChunkWorkChain", "launch_invariants"]
