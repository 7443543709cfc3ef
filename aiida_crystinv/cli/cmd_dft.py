"""``crystinv pseudo-family``: an aiida-pseudo family with recommended cutoffs from UPF files."""

from __future__ import annotations

import click
from aiida.cmdline.utils import echo

from .params import FiniteFloatRange
from .root import cmd_crystinv
from .utils import clean_errors, with_profile

__all__ = ["cmd_pseudo_family"]


@cmd_crystinv.command("pseudo-family")
@click.argument("label")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True), metavar="UPF_FILE_OR_FOLDER...")
@click.option("--ecutwfc", type=FiniteFloatRange(min=0, min_open=True), default=None, metavar="RY",
              help="Wavefunction cutoff (Ry) for every element. Default: the UPF header's suggestion.")
@click.option("--ecutrho", type=FiniteFloatRange(min=0, min_open=True), default=None, metavar="RY",
              help="Charge-density cutoff (Ry). Default: the header's suggestion, else 4 x ecutwfc "
                   "(norm-conserving) or 8 x ecutwfc (ultrasoft, PAW).")
@click.option("--description", default="", help="Description of the family.")
@with_profile
@clean_errors
def cmd_pseudo_family(label, paths, ecutwfc, ecutrho, description):
    """Make the pseudopotential family LABEL, with recommended cutoffs, from UPF files.

    aiida-quantumespresso's protocol builders (`get_builder_from_protocol`) take
    pseudopotentials and cutoffs from such a family: name it in the hand-off's
    overrides (`pseudo_family: LABEL`). One file per element; a folder stands for
    its .UPF files. The cutoffs are stored with stringency `normal` (the default).
    Nothing is stored when a file, an element or a cutoff is wrong.

    \b
    Examples (the UPF files of Debian's quantum-espresso-data):
        crystinv pseudo-family qe-C /usr/share/espresso/pseudo/C.pbe-rrkjus.UPF --ecutwfc 30 --ecutrho 240
        crystinv pseudo-family qe-CN /usr/share/espresso/pseudo/C.pbe-n-kjpaw_psl.0.1.UPF \\
            /usr/share/espresso/pseudo/N.pbe-n-kjpaw_psl.0.1.UPF
    """
    from ..dft.pseudos import PseudoFamilyError, create_pseudo_family, plan_family

    try:
        import aiida_pseudo  # noqa: F401
    except ImportError:
        echo.echo_critical("aiida-pseudo is not installed: pip install 'aiida-crystinv[qe]'")
    try:
        infos, cutoffs = plan_family(paths, ecutwfc, ecutrho)
        family = create_pseudo_family(label, paths, ecutwfc, ecutrho, description)
    except PseudoFamilyError as exception:
        echo.echo_critical(str(exception))
    echo.echo_success(f"pseudopotential family '{family.label}' (pk {family.pk}, {type(family).__name__}) "
                      f"with {len(infos)} element(s)")
    for info in sorted(infos, key=lambda i: i.element):
        c = cutoffs[info.element]
        echo.echo(f"  {info.element}: {c['cutoff_wfc']:g} / {c['cutoff_rho']:g} Ry  {info.path.name} ({info.pseudo_type})")
    echo.echo(f"  use it:  overrides: {{pseudo_family: {family.label}}} in a protocol hand-off")
