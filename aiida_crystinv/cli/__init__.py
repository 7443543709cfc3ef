"""Command line interface: ``verdi data crystinv ...`` and the ``crystinv`` script.

* :data:`cmd_crystinv` -- the click group, registered as the ``aiida.cmdline.data`` entry
  point ``crystinv`` (so ``verdi data crystinv ...`` runs it with verdi's profile);
* :func:`main` -- the ``crystinv`` console script: the same group, with the default
  profile loaded, or an embedded SQLite profile created when there is no profile at all.

Subcommands: ``import``, ``list``, ``show``, ``export``, ``invariants``, ``distances``,
``neighbours``, ``duplicates``, ``search``, ``predict``, ``plot``, ``setup-worker``, ``pseudo-family``, ``study``,
``demo``, ``clean``, ``audit``. The demo is also a function,
:func:`~aiida_crystinv.cli.cmd_demo.run_demo`.
"""

import os
import sys
import warnings

if os.path.basename(sys.argv[0] or "") == "crystinv":  # the script: Ctrl-C while it loads says one line
    from .embedded import install_early_signal_handlers

    install_early_signal_handlers()

# Importing aiida creates its configuration folder on a fresh machine and warns; the
# ``crystinv`` script says what it created in its own words (see ``embedded``).
warnings.filterwarnings("ignore", message="Creating AiiDA configuration folder", category=UserWarning)

from . import cmd_clean, cmd_compute, cmd_dataset, cmd_demo, cmd_dft, cmd_model, cmd_plot, cmd_study, cmd_worker  # noqa: E402,F401 - register the subcommands
from . import cmd_audit, cmd_show, cmd_similar  # noqa: E402,F401 - audit, show, duplicates, search
from .embedded import main  # noqa: E402
from .root import cmd_crystinv  # noqa: E402

__all__ = ("cmd_crystinv", "main")
