"""Sources as calcfunctions: a generated landscape and an AiiDA group, each as ONE dataset."""

from __future__ import annotations


from aiida import orm
from aiida.engine import calcfunction

from ..data import CrystalDatasetData
from ..exit_codes import EXIT
from .ports import (
    check_group_options,
    check_synthetic_parameters,
    validate_inputs,
)

__all__ = ["synthetic_dataset", "import_group"]

# ------------------------------------------------------------------------------- sources


@calcfunction
def synthetic_dataset(parameters: orm.Dict):
    """A generated dataset: ``{'generator': 'ewald_landscape', 'n': 200, 'seed': 0,
    'duplicate_fraction': 0.08, 'max_atoms': 24}`` (see
    :func:`aiida_crystinv.sources.synthetic.ewald_landscape`): ionic polymorphs labelled
    with their Ewald energy per atom (eV/atom). Deterministic for a seed; offline.

    The parameters are validated at the port. Exit codes: 202 the generator failed.
    """
    from ..sources.synthetic import ewald_landscape

    params = parameters.get_dict()
    generator = params.pop("generator", "ewald_landscape")
    try:
        ids, structures, targets, units = ewald_landscape(**params)
    except (TypeError, ValueError) as exc:
        return EXIT.ERROR_SOURCE_FAILED.format(message=f"ewald_landscape{tuple(params.items())}: {exc}")
    dataset = CrystalDatasetData.from_structures(
        structures,
        ids=ids,
        targets=targets,
        units=units,
        source={"description": f"synthetic {generator}", "extras": {"generator": generator, **params}},
    )
    return {"dataset": dataset}


@calcfunction
def import_group(group: orm.Str, options: orm.Dict | None = None):
    """The ``StructureData`` nodes of an AiiDA group (by label) as one dataset.

    The group's label and UUID and the UUIDs of the nodes are recorded on the dataset.
    ``options``: ``{'on_error': 'fail' | 'skip'}`` (validated at the port). Exit codes: 202
    no such group or a bad record.
    """
    from aiida.common.exceptions import NotExistent

    opts = options.get_dict() if options is not None else {}
    on_error = opts.pop("on_error", "fail")
    try:
        dataset = CrystalDatasetData.from_group(group.value, on_error=on_error)
    except NotExistent:
        return EXIT.ERROR_SOURCE_FAILED.format(message=f"no group with label {group.value!r}")
    except ValueError as exc:
        return EXIT.ERROR_SOURCE_FAILED.format(message=str(exc))
    return {"dataset": dataset}


validate_inputs(synthetic_dataset, parameters=check_synthetic_parameters)
validate_inputs(import_group, options=check_group_options)
