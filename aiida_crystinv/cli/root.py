"""The root command group: ``verdi data crystinv`` and the ``crystinv`` script."""

from __future__ import annotations

import click
from aiida.cmdline.groups import VerdiCommandGroup

__all__ = ("cmd_crystinv",)


def _load_profile_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Load the profile named with ``--profile`` (only when given: ``verdi -p`` already did otherwise)."""
    if value is None or ctx.resilient_parsing:
        return value
    from aiida.cmdline.utils import echo
    from aiida.common.exceptions import ConfigurationError
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    try:
        config = get_config(create=True)
        profile = config.get_profile(value)
    except ConfigurationError as exception:
        raise click.BadParameter(str(exception), param_hint="--profile") from exception
    try:
        get_manager().load_profile(profile, allow_switch=True)
    except Exception as exception:  # noqa: BLE001 - a locked or broken profile: say so, no traceback
        echo.echo_critical(f"cannot load profile {value!r}: {exception}")
    return value


@click.group(
    "crystinv",
    cls=VerdiCommandGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-p",
    "--profile",
    "profile",
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_load_profile_option,
    help="Use this AiiDA profile instead of the default one.",
)
def cmd_crystinv() -> None:
    """Isometry invariants of crystals (AMD, PDD, GRID, RDF), with provenance.

    Import crystal structures into one dataset node, compute invariants and
    distances between them, find nearest neighbours and near-duplicates. Every
    step is an AiiDA process: its inputs and outputs stay linked in the
    provenance graph (`verdi node graph generate PK` draws it).

    \b
    Start here (no files needed, runs offline):
        crystinv demo                    # or: verdi data crystinv demo
    A typical session on your own data:
        crystinv import structures.cif --label mine
        crystinv list
        crystinv invariants DATASET_PK --descriptor pdd -p k=100
        crystinv neighbours INVARIANTS_PK -k 5
        crystinv duplicates INVARIANTS_PK --threshold 0.02

    Every command takes --help with an example.
    """
