"""Command line interface: ``verdi data crystinv ...`` and the ``crystinv`` script.

* :data:`cmd_crystinv` -- the click group, registered as the ``aiida.cmdline.data`` entry
  point ``crystinv`` (so ``verdi data crystinv ...`` runs it with verdi's profile);
* :func:`main` -- the ``crystinv`` console script: the same group, with the default
  profile loaded, or an embedded SQLite profile created when there is no profile at all.

Subcommands: ``import``, ``list``, ``show``, ``export``, ``invariants``, ``distances``,
``neighbours``, ``duplicates``, ``demo``. The demo is also a function,
:func:`~aiida_crystinv.cli.cmd_demo.run_demo`.
"""

from . import cmd_compute, cmd_dataset, cmd_demo, cmd_study  # noqa: F401 - register the subcommands
from .embedded import main
from .root import cmd_crystinv

__all__ = ("cmd_crystinv", "main")
