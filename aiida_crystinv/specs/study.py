"""Specs of sources, hand-offs, screenings and whole studies (the YAML study file).

:class:`StudySpec` validates a parsed study file; :meth:`StudySpec.plan` turns it into the
normalised JSON plan that the ``StudyWorkChain`` runs (labels, every compatible
(descriptor, model) pair, the sources by role). File paths are resolved relative to the
``base`` folder passed in the validation context (the study file's folder); whether files
exist and entry points load is checked by the AiiDA layer, not here.
"""

from __future__ import annotations

import pathlib
import re
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    NonNegativeInt,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)

from ._base import Float, Int, Name, PositiveInt, Spec, SpecError, parse, register_tags
from .descriptors import DescriptorSpec, FeaturesSpec, InvariantSpec
from .jobs import JobOptions
from .sources import (
    FILE_OPTIONS,
    SECRET_KEYS,
    SOURCE_KINDS,
    DatasetSource,
    FileSource,
    GroupOptions,
    GroupSource,
    ImportOptions,
    MaterialsProjectQuery,
    MaterialsProjectSource,
    MPOptions,
    SourceSpec,
    SyntheticParameters,
    SyntheticSource,
    _refuse_secrets,
)
from .learning import (
    HoldoutSpec,
    KFoldSpec,
    KNNSpec,
    KRRSpec,
    ModelSpec,
    SelectionSpec,
    _ModelBase,
    pair_problem,
)

__all__ = [
    "FileSource",
    "GroupSource",
    "MaterialsProjectSource",
    "SyntheticSource",
    "DatasetSource",
    "SourceSpec",
    "HandoffSpec",
    "LoopSpec",
    "ScreeningSpec",
    "TargetSpec",
    "TestSplitSpec",
    "AuditSpec",
    "StudySpec",
    "parse_study",
    "SOURCE_KINDS",
    "FILE_OPTIONS",
    "SECRET_KEYS",
    "ImportOptions",
    "MPOptions",
    "GroupOptions",
]


class HandoffSpec(Spec):
    """Hand the selected structures to a WorkChain (an entry point), one child each: with an
    inputs template (``inputs``), the WorkChain's protocol builder (``protocol`` + ``code``
    + ``parameters``) or a builder callable (``builder`` + ``code`` + ``parameters``); see
    :mod:`aiida_crystinv.workflows.handoff`."""

    workflow: Name
    inputs: dict[str, Any] = {}
    structure_input: Name = "structure"
    protocol: Name | None = None
    builder: Name | None = None
    code: Name | None = None
    parameters: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"workflow": data} if isinstance(data, str) else data

    @field_validator("inputs", "parameters")
    @classmethod
    def _no_secret(cls, inputs: dict[str, Any]) -> dict[str, Any]:
        return _refuse_secrets(inputs, "a study")


class PairChoice(Spec):
    descriptor: Name
    model: Name


class ScreeningSpec(Spec):
    """Screen ``candidates`` with the best (or a chosen) trained model."""

    candidates: SourceSpec
    model: Union[Literal["best"], PairChoice] = "best"
    top: PositiveInt | None = None
    threshold: Float | None = None
    order: Literal["lowest", "highest"] = "lowest"
    group: Name | None = None
    handoff: HandoffSpec | None = None

    @property
    def selection(self) -> SelectionSpec:
        return SelectionSpec(top=self.top, threshold=self.threshold, order=self.order)


class LoopSpec(Spec):
    """``loop:`` of a study: the screen -> DFT -> retrain loop (``DftLoopWorkChain``) with
    the best (or a chosen) trained pair, on ``candidates``."""

    candidates: SourceSpec
    model: Union[Literal["best"], PairChoice] = "best"
    best: NonNegativeInt = 2
    uncertain: NonNegativeInt = 0
    order: Literal["lowest", "highest"] = "lowest"
    rounds: PositiveInt = 2
    patience: PositiveInt = 1
    max_sites: PositiveInt | None = None
    calibration: list[Name] | None = None
    handoff: HandoffSpec

    @model_validator(mode="after")
    def _selects(self) -> "LoopSpec":
        if self.best + self.uncertain == 0:
            raise ValueError("the loop selects nothing: set best and/or uncertain")
        return self


class TargetSpec(Spec):
    """The property to learn, optionally fitted in log10."""

    name: Name
    transform: Literal["log10"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class TestSplitSpec(Spec):
    """An explicit test set: a second source."""

    kind: Literal["test"] = "test"
    source: SourceSpec


register_tags("test", "spec")


def _study_split_tag(value: Any) -> str | None:
    kind = value.get("kind", "kfold") if isinstance(value, Mapping) else getattr(value, "kind", None)
    return kind if kind in ("kfold", "holdout", "test") else None


StudySplit = Annotated[
    Union[Annotated[KFoldSpec, Tag("kfold")], Annotated[HoldoutSpec, Tag("holdout")], Annotated[TestSplitSpec, Tag("test")]],
    Discriminator(_study_split_tag, custom_error_type="unknown_split",
                  custom_error_message="split kind must be kfold, holdout or test (with a source)"),
]


def _as_list(value: Any) -> Any:
    if isinstance(value, (str, Mapping)):
        return [value]
    return value


def _labelled(value: Any) -> Any:
    """Items are a name or a mapping; ``label`` (and ``descriptors`` for models) are
    study-level keys, split off before the item is validated."""
    value = _as_list(value)
    if not isinstance(value, list):
        return value
    return [{"name": v} if isinstance(v, str) else v for v in value]


def label_of(text: str) -> str:
    """A link-label-safe, lower-case label (``'amd+element_stats'`` -> ``'amd_element_stats'``)."""
    label = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "x"
    return f"x{label}" if label[0].isdigit() else label


def _unique(label: str, taken: set[str]) -> str:
    out, n = label, 2
    while out in taken:
        out = f"{label}_{n}"
        n += 1
    taken.add(out)
    return out


class LabelledDescriptor(Spec):
    label: Name | None = None
    spec: DescriptorSpec  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "spec" not in data:
            data = dict(data)
            return {"label": data.pop("label", None), "spec": data}
        return data


class LabelledModel(Spec):
    label: Name | None = None
    descriptors: list[Name] | None = None
    spec: ModelSpec  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "spec" not in data:
            data = dict(data)
            only = data.pop("descriptors", None)
            return {"label": data.pop("label", None), "descriptors": _as_list(only), "spec": data}
        return data


class JobsSpec(Spec):
    """``jobs:`` of a study: compute the invariants as jobs of the worker ``code``
    (``LABEL@COMPUTER``, set up with ``crystinv setup-worker``), sized by ``options``."""

    code: Name
    options: JobOptions = JobOptions()


def _descriptor_name(name: str) -> str:
    """``name`` when :func:`aiida_crystinv.representations.get_descriptor` resolves it."""
    from ..representations import DescriptorError, get_descriptor

    try:
        get_descriptor(name)
    except DescriptorError as exc:
        raise ValueError(str(exc)) from None
    return name


class AuditSpec(Spec):
    """``audit:`` of a study: the invariance and continuity audit of ``descriptors`` (names
    :func:`aiida_crystinv.representations.get_descriptor` resolves) on the first
    ``n_structures`` records of the training dataset, and with ``target: true`` the
    continuity of the study's target on the first ``n_target`` records (default: all);
    run by the calcfunction ``crystinv.audit`` (docs/representations.md)."""

    descriptors: Annotated[list[Annotated[Name, AfterValidator(_descriptor_name)]], BeforeValidator(_as_list),
                           Field(min_length=1)]
    n_structures: PositiveInt = 4
    target: StrictBool = False
    n_target: Annotated[Int, Field(ge=3)] | None = None

    @field_validator("descriptors")
    @classmethod
    def _once(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} given more than once; give each descriptor once")
        return names

    @model_validator(mode="after")
    def _target(self) -> "AuditSpec":
        if self.n_target is not None and not self.target:
            raise ValueError("n_target is only used with target: true")
        return self

    def normalised(self, target: str) -> dict[str, Any]:
        """The plan's ``audit``: the descriptor names and the ``parameters`` of ``audit_descriptors``."""
        parameters: dict[str, Any] = {"n_structures": self.n_structures}
        if self.target:
            parameters["target"] = target
            if self.n_target is not None:
                parameters["n_target"] = self.n_target
        return {"descriptors": list(self.descriptors), "parameters": parameters}


class StudySpec(Spec):
    """A whole study file (see :mod:`aiida_crystinv.workflows.study`)."""

    name: Name = "study"
    description: str = ""
    source: SourceSpec
    target: TargetSpec
    descriptors: Annotated[list[LabelledDescriptor], BeforeValidator(_labelled), Field(min_length=1)]
    models: Annotated[list[LabelledModel], BeforeValidator(_labelled), Field(min_length=1)]
    split: StudySplit = KFoldSpec()
    screening: ScreeningSpec | None = None
    loop: LoopSpec | None = None
    jobs: JobsSpec | None = None
    audit: AuditSpec | None = None

    @field_validator("split", mode="before")
    @classmethod
    def _default_split(cls, value: Any) -> Any:
        return {"kind": "kfold"} if value is None else value

    @model_validator(mode="after")
    def _pairs(self) -> "StudySpec":
        self.plan()  # every cross-reference is checked here, so an invalid study never validates
        return self

    def plan(self) -> dict[str, Any]:
        """The normalised plan the StudyWorkChain runs (JSON).

        Raises:
            ValueError: a model restricted to an unknown descriptor label, no trainable pair,
                or a screening model that is not a trained pair.
        """
        target = self.target
        taken: set[str] = set()
        descriptors: list[dict[str, Any]] = []
        for d in self.descriptors:
            dspec: Any = d.spec
            descriptors.append({"label": _unique(label_of(d.label or dspec.name), taken), "spec": dspec.normalised()})
        models: list[dict[str, Any]] = []
        taken = set()
        for i, m in enumerate(self.models):
            only = None
            if m.descriptors is not None:
                known = [d["label"] for d in descriptors]
                wrong = [o for o in m.descriptors if label_of(o) not in known]
                if wrong:
                    raise ValueError(f"models[{i}].descriptors: no descriptor labelled {wrong}; the labels are {known}")
                only = [label_of(o) for o in m.descriptors]
            mspec: Any = m.spec
            spec = mspec.normalised()
            if target.transform and isinstance(mspec, (KNNSpec, KRRSpec)) and "target_transform" not in spec:
                spec["target_transform"] = target.transform
            models.append({"label": _unique(label_of(m.label or mspec.name), taken), "spec": spec, "descriptors": only})
        pairs: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for dplan, dinput in zip(descriptors, self.descriptors):
            for mplan, minput in zip(models, self.models):
                if mplan["descriptors"] is not None and dplan["label"] not in mplan["descriptors"]:
                    continue
                problem = pair_problem(minput.spec, dinput.spec)
                if problem:
                    skipped.append({"descriptor": dplan["label"], "model": mplan["label"], "reason": problem})
                    continue
                pairs.append({"label": f"{mplan['label']}_on_{dplan['label']}", "descriptor": dplan["label"],
                              "model": mplan["label"]})
        if not pairs:
            reasons = "; ".join(f"{s['model']} on {s['descriptor']}: {s['reason']}" for s in skipped)
            raise ValueError(f"no model can be trained on any descriptor ({reasons})")
        sources = {"train": self.source.normalised(target.name)}
        if isinstance(self.split, TestSplitSpec):
            sources["test"] = self.split.source.normalised(target.name)
            split: dict[str, Any] = {"kind": "test"}
        else:
            split = self.split.as_dict()
        screening = None
        if self.screening is not None:
            sc = self.screening
            sources["candidates"] = sc.candidates.normalised(None)
            screening = {
                "selection": sc.selection.normalised(),
                "model": _pair_choice(sc.model, pairs, "screening"),
                "group": sc.group,
                "handoff": sc.handoff.as_dict() if sc.handoff else None,
            }
        loop = None
        if self.loop is not None:
            lp = self.loop
            sources["pool"] = lp.candidates.normalised(None)
            loop = {
                "model": _pair_choice(lp.model, pairs, "loop"),
                "selection": {"best": lp.best, "uncertain": lp.uncertain, "order": lp.order},
                "rounds": lp.rounds, "patience": lp.patience, "max_sites": lp.max_sites,
                "calibration": lp.calibration, "handoff": lp.handoff.as_dict(),
            }
        return {
            "name": self.name,
            "description": self.description,
            "target": {"name": target.name, "transform": target.transform},
            "sources": sources,
            "descriptors": descriptors,
            "models": models,
            "pairs": pairs,
            "skipped": skipped,
            "split": split,
            "screening": screening,
            "loop": loop,
            "jobs": None if self.jobs is None else {
                "code": self.jobs.code, "options": self.jobs.options.model_dump(mode="json", exclude_unset=True)
            },
            "audit": None if self.audit is None else self.audit.normalised(target.name),
        }


def _pair_choice(model: Any, pairs: list[dict[str, Any]], where: str) -> str:
    """``'best'`` or the label of the chosen trained pair (checked to exist)."""
    if not isinstance(model, PairChoice):
        return "best"
    choice = f"{label_of(model.model)}_on_{label_of(model.descriptor)}"
    if choice not in [p["label"] for p in pairs]:
        raise ValueError(f"{where}.model: no trained pair {choice!r}; the pairs are " + ", ".join(p["label"] for p in pairs))
    return choice


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently), e.g. two ``target:`` lines in a study file.

    Raises:
        yaml.YAMLError: invalid YAML or a repeated key; ``problem_mark`` is where the
            second one is and ``problem`` names the key and the line of the first.
    """
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the safe loader says why
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key {key!r} is given twice (first at line {first + 1}); give each key once",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def parse_study(data: Any, where: str = "study", base: str | pathlib.Path = ".") -> StudySpec:
    """A validated study (the parsed YAML); relative paths are relative to ``base``.

    Raises:
        SpecError: the first problems, each naming its key.
    """
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: a study is a YAML mapping with keys " + ", ".join(StudySpec.model_fields))
    return parse(StudySpec, data, where, context={"base": str(base)})


__all__ += ["load_yaml", "label_of", "PairChoice", "MaterialsProjectQuery", "SyntheticParameters", "_ModelBase", "InvariantSpec",
            "FeaturesSpec"]
