"""Hand structures to any WorkChain: an inputs template, a protocol builder or a callable.

Three ways to make the inputs of one child per structure (the ``handoff`` input namespace of
:class:`~aiida_crystinv.workflows.screening.ScreeningWorkChain` and of
:class:`~aiida_crystinv.workflows.loop.DftLoopWorkChain`):

* ``inputs``: a JSON template keyed by the child's ports (:func:`build_handoff_inputs`); the
  structure goes into ``structure_input``;
* ``protocol``: the child's own ``get_builder_from_protocol(code, structure, protocol=...,
  **parameters)`` (aiida-quantumespresso, the common-workflows interfaces); ``parameters``
  holds its keyword arguments (``overrides``, ``options``, ``electronic_type``...): names
  the method does not take are refused, strings are turned into the enums the signature
  expects (``'insulator'`` -> ``ElectronicType.INSULATOR``);
* ``builder``: a callable named by a dotted path (``'package.module:function'``) or an entry
  point of the group ``crystinv.handoff_builders``, called as
  ``builder(structure=..., code=..., protocol=..., **parameters)``; it returns a
  ``ProcessBuilder`` or a dict of inputs.

A structure whose inputs cannot be built (a pseudopotential family without its element, a
protocol that refuses the structure) is a failure of that structure only; the others run.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from typing import Any, Callable

from aiida import orm
from aiida.common.links import LinkType

from ..exit_codes import describe_failure

__all__ = [
    "add_handoff_ports", "build_handoff_inputs", "validate_handoff", "HandoffPlan", "launch_handoffs",
    "inspect_handoffs", "load_builder", "BUILDER_GROUP", "handoff_nodes", "returned_outputs",
]

#: entry-point group of registered builders
BUILDER_GROUP = "crystinv.handoff_builders"


def _port(namespace: Any, dotted: str) -> Any:
    port = namespace
    for part in dotted.split("."):
        port = port[part]
    return port


def _nest(inputs: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        inputs = inputs.setdefault(part, {})
    inputs[parts[-1]] = value


def build_handoff_inputs(process_class: type, template: dict[str, Any], structure_input: str) -> dict[str, Any]:
    """Turn a JSON inputs template into the inputs of ``process_class`` (without the structure).

    Plain values become nodes (``orm.to_aiida_type``), nested namespaces are dicts, a string
    ``'@<pk, uuid, label or LABEL@COMPUTER>'`` loads an existing node or code, ``metadata``
    passes through.

    Raises:
        ValueError: a key that is not a port of the process (the message lists the ports),
            or a ``'@...'`` reference to a node that does not exist.
    """
    from plumpy.ports import PortNamespace

    def convert(namespace: Any, values: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            where = f"{path}{key}"
            if key == "metadata":
                out[key] = value
                continue
            if key not in namespace:
                if namespace.dynamic:
                    out[key] = _node(value, where)
                    continue
                raise ValueError(
                    f"{process_class.__name__} has no input {where!r}; its inputs{' in ' + path.rstrip('.') if path else ''} "
                    f"are {', '.join(k for k in namespace if k != 'metadata')}"
                )
            port = namespace[key]
            if isinstance(port, PortNamespace) and isinstance(value, dict):
                out[key] = convert(port, value, f"{where}.")
            else:
                out[key] = _node(value, where)
        return out

    inputs = process_class.spec().inputs
    try:
        _port(inputs, structure_input)
    except (KeyError, TypeError):
        raise ValueError(
            f"{process_class.__name__} has no input {structure_input!r} for the structure; set handoff.structure_input "
            f"to one of its inputs: {', '.join(k for k in inputs if k != 'metadata')}"
        ) from None
    return convert(inputs, dict(template or {}), "")


def _node(value: Any, where: str) -> Any:
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    if isinstance(value, orm.Node):
        return value
    if isinstance(value, str) and value.startswith("@"):
        identifier = value[1:]
        try:
            return orm.load_node(identifier)
        except (NotExistent, MultipleObjectsError, ValueError) as exc:
            if "@" in identifier:  # a code as LABEL@COMPUTER
                try:
                    return orm.load_code(identifier)
                except (NotExistent, MultipleObjectsError, ValueError):
                    pass
            raise ValueError(f"input {where!r}: cannot load node {identifier!r} ({exc})") from None
    return orm.to_aiida_type(value)


def add_handoff_ports(spec: Any, namespace: str = "handoff") -> None:
    """The ``handoff`` input namespace (see the module's docstring)."""
    spec.input_namespace(namespace, required=False, help="Launch a WorkChain on every selected structure.")
    spec.input(f"{namespace}.workflow", valid_type=orm.Str, required=False,
               help="Entry point, e.g. 'crystinv.ewald_energy' or 'quantumespresso.pw.base'.")
    spec.input(f"{namespace}.inputs", valid_type=orm.Dict, required=False, help="Inputs template (JSON) of that WorkChain.")
    spec.input(f"{namespace}.structure_input", valid_type=orm.Str, required=False,
               help="Input port of the structure (default 'structure'; dotted for a nested port).")
    spec.input(f"{namespace}.protocol", valid_type=orm.Str, required=False,
               help="Build the inputs with the WorkChain's get_builder_from_protocol and this protocol (e.g. 'fast').")
    spec.input(f"{namespace}.builder", valid_type=orm.Str, required=False,
               help=f"Build the inputs with this callable: 'module:function' or an entry point in {BUILDER_GROUP}.")
    spec.input(f"{namespace}.code", valid_type=orm.AbstractCode, required=False, help="The code for the builder.")
    spec.input(f"{namespace}.parameters", valid_type=orm.Dict, required=False,
               help="Keyword arguments of the builder: overrides, options, electronic_type...")


def load_builder(name: str) -> Callable[..., Any]:
    """A builder callable from ``'module:function'``, ``'module.function'`` or an entry point.

    Raises:
        ValueError: nothing callable under that name.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=BUILDER_GROUP):
        if ep.name == name:
            return ep.load()
    module, sep, attr = name.partition(":")
    if not sep:
        module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise ValueError(f"builder {name!r}: give 'module:function' or an entry point of {BUILDER_GROUP}")
    try:
        target = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"builder {name!r} cannot be loaded: {exc}") from None
    if not callable(target):
        raise ValueError(f"builder {name!r} is not callable")
    return target


def _enum_arguments(function: Callable[..., Any], parameters: dict[str, Any], where: str) -> dict[str, Any]:
    """``parameters`` checked against ``function``'s named arguments; strings turned into the
    enum its default has (``'insulator'`` -> ``ElectronicType.INSULATOR``)."""
    signature = inspect.signature(function)
    named = {k: p for k, p in signature.parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    taken = {"code", "structure", "protocol"}
    out = {}
    for key, value in parameters.items():
        if key in taken:
            raise ValueError(f"{where}: {key!r} is given by the hand-off itself (handoff.{key}), not in parameters")
        if key not in named:
            known = ", ".join(k for k in named if k not in taken and k != "cls")
            raise ValueError(f"{where} takes no argument {key!r}; it takes {known}")
        default = named[key].default
        if isinstance(default, enum.Enum) and isinstance(value, str):
            kind = type(default)
            choices = {m.name.lower(): m for m in kind} | {str(m.value).lower(): m for m in kind}
            if value.lower() not in choices:
                raise ValueError(f"{where}: {key}={value!r} is not one of {', '.join(m.name.lower() for m in kind)}")
            value = choices[value.lower()]
        out[key] = value
    return out


class HandoffPlan:
    """What the ``handoff`` inputs say, checked: :meth:`inputs_for` makes one child's inputs."""

    def __init__(self, handoff: Any):
        from aiida.plugins import WorkflowFactory
        from aiida.plugins.entry_point import get_entry_point_names

        def get(key: str) -> Any:
            return handoff.get(key) if hasattr(handoff, "get") else getattr(handoff, key, None)

        def value(key: str) -> Any:
            node = get(key)
            return node.value if isinstance(node, orm.Str) else node

        self.workflow = value("workflow")
        if not self.workflow:
            raise ValueError("handoff inputs were given without handoff.workflow")
        try:
            self.process_class = WorkflowFactory(self.workflow)
        except Exception as exc:  # noqa: BLE001 - MissingEntryPointError, ImportError...
            known = ", ".join(sorted(get_entry_point_names("aiida.workflows")))
            raise LookupError(f"{self.workflow!r} is not an installed workflow entry point ({type(exc).__name__}); "
                              f"installed: {known}") from None
        self.protocol = value("protocol")
        self.builder_name = value("builder")
        self.code = get("code")
        template = get("inputs")
        self.template = template.get_dict() if isinstance(template, orm.Dict) else dict(template or {})
        parameters = get("parameters")
        self.parameters = parameters.get_dict() if isinstance(parameters, orm.Dict) else dict(parameters or {})
        self.structure_input = value("structure_input") or "structure"
        name = self.process_class.__name__
        if self.protocol is not None and self.builder_name is not None:
            raise ValueError("give handoff.protocol or handoff.builder, not both")
        if self.protocol is None and self.builder_name is None:
            for key in ("code", "parameters"):
                if get(key) is not None:
                    raise ValueError(f"handoff.{key} is for a builder: give handoff.protocol or handoff.builder too")
            build_handoff_inputs(self.process_class, self.template, self.structure_input)
            self.function = None
            return
        if self.template:
            raise ValueError("handoff.inputs is for the template hand-off; with a protocol or a builder, put the "
                             "settings in handoff.parameters (e.g. overrides, options)")
        if self.code is None:
            raise ValueError("a protocol or builder hand-off needs handoff.code (the code of the child's calculations)")
        if self.builder_name is not None:
            self.function = load_builder(self.builder_name)
            where = f"builder {self.builder_name!r}"
        else:
            method = getattr(self.process_class, "get_builder_from_protocol", None)
            if method is None:
                raise ValueError(f"{name} has no protocol builder (get_builder_from_protocol); hand off with "
                                 "handoff.inputs (a template) or a handoff.builder callable instead")
            protocols = getattr(self.process_class, "get_available_protocols", None)
            if protocols is not None:
                available = list(protocols())
                if self.protocol not in available:
                    raise ValueError(f"{name} has no protocol {self.protocol!r}; it has {', '.join(available)}")
            self.function = method
            where = f"{name}.get_builder_from_protocol"
        self.arguments = _enum_arguments(self.function, self.parameters, where) if self.builder_name is None else dict(self.parameters)

    def inputs_for(self, structure: orm.StructureData) -> tuple[Any, dict[str, Any] | Any]:
        """``(process_class, inputs or builder)`` of the child for ``structure``.

        Raises:
            ValueError: the builder refused the structure (its message).
        """
        if self.function is None:
            inputs = build_handoff_inputs(self.process_class, self.template, self.structure_input)
            _nest(inputs, self.structure_input, structure)
            return self.process_class, inputs
        try:
            if self.builder_name is not None:
                built = self.function(structure=structure, code=self.code, protocol=None, **self.arguments)
            else:
                built = self.function(self.code, structure, protocol=self.protocol, **self.arguments)
        except Exception as exc:  # noqa: BLE001 - the builder's own refusal, passed on per structure
            raise ValueError(f"building the inputs failed: {type(exc).__name__}: {exc}") from None
        return self.process_class, built


def handoff_nodes(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``handoff`` inputs (nodes) of a study file's hand-off (``HandoffSpec.as_dict()``).

    Raises:
        ValueError: the code cannot be loaded.
    """
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    nodes: dict[str, Any] = {"workflow": orm.Str(spec["workflow"])}
    if spec.get("inputs"):
        nodes["inputs"] = orm.Dict(spec["inputs"])
    if spec.get("structure_input") and spec["structure_input"] != "structure":
        nodes["structure_input"] = orm.Str(spec["structure_input"])
    for key in ("protocol", "builder"):
        if spec.get(key):
            nodes[key] = orm.Str(spec[key])
    if spec.get("code"):
        try:
            nodes["code"] = orm.load_code(spec["code"])
        except (NotExistent, MultipleObjectsError, ValueError) as exc:
            raise ValueError(f"code {spec['code']!r} cannot be loaded ({exc}); `verdi code list` shows the codes") from None
    if spec.get("parameters"):
        nodes["parameters"] = orm.Dict(spec["parameters"])
    return nodes


def validate_handoff(handoff: Any) -> str | None:
    """The port validator's message for the ``handoff`` namespace, or None."""
    if not handoff:
        return None
    try:
        HandoffPlan(handoff)
    except LookupError as exc:
        return str(exc)
    except ValueError as exc:
        return f"invalid hand-off inputs: {exc}"
    return None


def launch_handoffs(workchain: Any, plan: HandoffPlan, structures: dict[str, orm.StructureData], prefix: str = "handoff") -> dict[str, str]:
    """Submit one child per structure from a WorkChain step; the futures go to the context
    as ``{prefix}_{label}``. Returns ``{label: reason}`` of the structures whose inputs could
    not be built (no child for them)."""
    launched, refused = [], {}
    for label, structure in structures.items():
        try:
            process_class, built = plan.inputs_for(structure)
        except ValueError as exc:
            refused[label] = str(exc)
            workchain.report(f"{structure.label or label}: {exc}")
            continue
        link = f"{prefix}_{label}"
        description = f"{structure.label or label} (hand-off)"
        if isinstance(built, dict):
            metadata = dict(built.pop("metadata", {}) or {})
            metadata.update({"call_link_label": link, "label": description})
            future = workchain.submit(process_class, **built, metadata=metadata)
        else:
            built.metadata.call_link_label = link
            built.metadata.label = description
            future = workchain.submit(built)
        workchain.to_context(**{link: future})
        launched.append(label)
    workchain.ctx[f"{prefix}_labels"] = launched
    workchain.report(f"launched {plan.workflow} on {len(launched)} structure(s)"
                     + (f"; {len(refused)} could not be handed off" if refused else ""))
    return refused


def inspect_handoffs(workchain: Any, prefix: str = "handoff") -> tuple[dict[str, Any], dict[str, str]]:
    """``({label: child finished ok}, {label: why it failed})`` of the launched children."""
    done, failed = {}, {}
    for label in workchain.ctx.get(f"{prefix}_labels", []):
        child = workchain.ctx[f"{prefix}_{label}"]
        if child.is_finished_ok:
            done[label] = child
        else:
            failed[label] = describe_failure(child)
    return done, failed


def returned_outputs(child: Any) -> dict[str, Any]:
    """The nodes a child returned, by link label (nested namespaces flattened with '__')."""
    return {link.link_label: link.node for link in child.base.links.get_outgoing(link_type=(LinkType.RETURN,)).all()}
