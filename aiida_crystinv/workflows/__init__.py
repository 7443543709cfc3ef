"""WorkChains of aiida-crystinv.

* :class:`InvariantsWorkChain` (``crystinv.invariants``) -- invariants of a dataset in
  parallel chunks, merged into one node
* :class:`DemoWorkChain` (``crystinv.demo``) -- the whole pipeline on a synthetic
  landscape (generate, import, AMD, PDD, kNN graph, near-duplicates); :func:`launch_demo`
* :mod:`.neighbours` -- launchers of the distance calcfunctions and the near-duplicate search
"""

from .demo import DemoWorkChain
from .demo_launch import launch_demo
from .invariants import InvariantsChunkWorkChain, InvariantsWorkChain, launch_invariants
from .neighbours import find_near_duplicates, launch_distances, launch_neighbours

__all__ = [
    "InvariantsWorkChain",
    "InvariantsChunkWorkChain",
    "launch_invariants",
    "DemoWorkChain",
    "launch_demo",
    "launch_distances",
    "launch_neighbours",
    "find_near_duplicates",
]
