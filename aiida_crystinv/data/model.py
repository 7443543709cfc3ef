"""``ModelData``: a trained regression model on crystal invariants, as ONE node.

The node holds everything needed to predict, without pickle:

* the fitted model's arrays (``.npy`` files in the node repository, written and read with
  ``allow_pickle=False``) and its JSON parameters (attribute ``model``: the spec it was
  built from, the constructor arguments and the fitted scalars such as the chosen ``k``
  or ``alpha``/``gamma``), rebuilt with
  :func:`aiida_crystinv.learning.models.model_from_arrays`;
* the descriptor (attribute ``descriptor``: ``kind``, ``name`` and *all* parameters) and,
  for kNN models, the metric (attribute ``metric``);
* the identity of the training data (attribute ``training``: UUIDs of the dataset and of
  the invariants / features node, number of records, a SHA-256 of the record ids; array
  ``training_ids``);
* the target (attribute ``target``: ``name``, ``unit``, ``transform``) and the metrics of
  the fit (attribute ``metrics``).

Two kinds of descriptor are understood (see :mod:`aiida_crystinv.specs`):

``invariants``
    the invariants stored as :class:`~aiida_crystinv.data.InvariantsData` (``amd``,
    ``pdd``, ``grid``, ``rdf``, ``composition``); kNN models compare them with a metric
    (``pdd_emd``, ``amd_linf``, ``grid_emd`` ...), vector models use AMD / GRID / RDF /
    composition vectors.
``features``
    feature vectors of :mod:`aiida_crystinv.learning.descriptors` (``amd``, ``pdd_stats``,
    ``element_stats``, ``density``, ``element_roles``, ``site_roles`` and ``+``-joined
    composites such as ``amd+element_stats``), computed from the structures.

A kNN model predicts from distances to its training records, so it needs the training
invariants at prediction time: they are not copied into the model (a GRID stack can be
hundreds of MB) but referenced by UUID (``training['invariants_uuid']``) and checked by
record ids when loaded.

:meth:`ModelData.predict_from` predicts for a dataset, invariants, features or plain
structures; :meth:`ModelData.incompatibility` explains why some invariants cannot be used
(another descriptor, other parameters).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from aiida.orm import Data

from ._arrays import ArrayRepositoryMixin, as_str_array, jsonable
from .values import (
    _MODEL_PREFIX,
    DescriptorValues,
    ModelSpecError,
    compute_values,
    descriptor_incompatibility,
    blas_limit,
    ids_hash,
    values_from_node,
    values_spec,
)

__all__ = ["ModelData"]


# ------------------------------------------------------------------------------- node


class ModelData(ArrayRepositoryMixin, Data):
    """A fitted model with its descriptor, target, training identity and metrics.

    Build with :meth:`from_model`; use with :meth:`get_model` (the rebuilt estimator),
    :meth:`predict_from` or the ``predict`` calcfunction
    (:func:`aiida_crystinv.calculations.learning.predict`).
    """

    @classmethod
    def from_model(
        cls,
        model: Any,
        model_spec: Mapping[str, Any],
        descriptor: Mapping[str, Any],
        target: Mapping[str, Any],
        training_ids: Sequence[str],
        dataset_uuid: str | None = None,
        invariants_uuid: str | None = None,
        features_uuid: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> "ModelData":
        """A new (unstored) node from a fitted estimator of :mod:`aiida_crystinv.learning.models`.

        Args:
            model: the fitted estimator (exported with ``to_arrays``; no pickle).
            model_spec: the normalised model spec (:func:`aiida_crystinv.specs.learning.resolve_pair`).
            descriptor: the normalised descriptor spec (``DescriptorSpec.normalised()``).
            target: ``{'name', 'unit', 'transform'}``.
            training_ids: identifiers of the training records, in training order.
            dataset_uuid / invariants_uuid / features_uuid: the training data.
            metrics: metrics of the fit (JSON-able).
        """
        arrays, params = model.to_arrays()
        node = cls()
        for name, array in arrays.items():
            node._set_array(_MODEL_PREFIX + name, np.asarray(array))
        node._set_array("training_ids", as_str_array(training_ids))
        attrs = node.base.attributes
        attrs.set("model", {"name": params["name"], "spec": jsonable(dict(model_spec)), "params": jsonable(params)})
        attrs.set("descriptor", jsonable(dict(descriptor)))
        attrs.set("metric", jsonable(dict(model_spec).get("metric")))
        attrs.set("target", jsonable({"name": target["name"], "unit": target.get("unit", ""), "transform": target.get("transform")}))
        attrs.set(
            "training",
            {
                "dataset_uuid": dataset_uuid,
                "invariants_uuid": invariants_uuid,
                "features_uuid": features_uuid,
                "n_records": len(training_ids),
                "ids_sha256": ids_hash(training_ids),
            },
        )
        attrs.set("metrics", jsonable(dict(metrics or {})))
        return node

    def _validate(self) -> bool:
        super()._validate()
        if not self.base.attributes.get("model", None):
            from aiida.common.exceptions import ValidationError

            raise ValidationError("an empty ModelData cannot be stored: build it with from_model()")
        return True

    # ------------------------------------------------------------------ metadata
    @property
    def model_name(self) -> str:
        """``'knn'``, ``'krr'`` or ``'median'``."""
        return self.base.attributes.get("model")["name"]

    @property
    def model_spec(self) -> dict[str, Any]:
        """The normalised spec the model was built from (with ``metric`` for kNN)."""
        return dict(self.base.attributes.get("model")["spec"])

    @property
    def model_params(self) -> dict[str, Any]:
        """Constructor arguments (``init``) and fitted scalars (``fitted``)."""
        return dict(self.base.attributes.get("model")["params"])

    @property
    def descriptor(self) -> dict[str, Any]:
        """``{'kind', 'name', 'params'}`` of the training descriptor."""
        return dict(self.base.attributes.get("descriptor"))

    @property
    def metric(self) -> dict[str, Any] | None:
        """``{'name', **params}`` of a kNN model's metric, else None."""
        m = self.base.attributes.get("metric", None)
        return dict(m) if m else None

    @property
    def target(self) -> dict[str, Any]:
        """``{'name', 'unit', 'transform'}``."""
        return dict(self.base.attributes.get("target"))

    @property
    def training(self) -> dict[str, Any]:
        """UUIDs of the training dataset and invariants / features, record count, ids hash."""
        return dict(self.base.attributes.get("training"))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.base.attributes.get("metrics", {}))

    @property
    def training_ids(self) -> list[str]:
        return self._get_array("training_ids").tolist()

    @property
    def needs_reference(self) -> bool:
        """True for kNN models: they predict from distances to the training invariants."""
        return self.model_name == "knn"

    # ------------------------------------------------------------------ model
    def get_model(self) -> Any:
        """The fitted estimator, rebuilt from the stored arrays and parameters."""
        from ..learning.models import model_from_arrays

        arrays = {n[len(_MODEL_PREFIX):]: self._get_array(n) for n in self.get_array_names() if n.startswith(_MODEL_PREFIX)}
        return model_from_arrays(arrays, self.model_params)

    def incompatibility(self, values: DescriptorValues | Any) -> str | None:
        """Why these descriptor values (or this InvariantsData / features node) cannot be
        given to the model, or None."""
        if not isinstance(values, DescriptorValues):
            try:
                spec = values_spec(values)
            except ModelSpecError as exc:
                return str(exc)
        else:
            spec = values.spec
        return descriptor_incompatibility(self.descriptor, spec)

    def check_reference(self, reference: Any) -> str | None:
        """Why ``reference`` is not the training invariants of this kNN model, or None."""
        reason = self.incompatibility(reference)
        if reason:
            return f"reference invariants: {reason}"
        ids = reference.ids
        if ids_hash(ids) != self.training.get("ids_sha256"):
            return (
                f"reference invariants {reference.pk} do not hold the {self.training.get('n_records')} training "
                "records of this model in training order"
            )
        return None

    def load_reference(self) -> Any:
        """The training invariants of a kNN model (loaded by UUID and checked)."""
        from aiida.orm import load_node

        uuid = self.training.get("invariants_uuid")
        if not uuid:
            raise ModelSpecError("this model records no training invariants")
        node = load_node(uuid)
        reason = self.check_reference(node)
        if reason:
            raise ModelSpecError(reason)
        return node

    def predict_values(self, values: DescriptorValues, reference: Any = None) -> np.ndarray:
        """Predictions (n,) in the target's unit for descriptor values.

        Raises:
            ModelSpecError: values of another descriptor or other parameters, or a wrong
                reference for a kNN model.
        """
        reason = self.incompatibility(values)
        if reason:
            raise ModelSpecError(reason)
        model = self.get_model()
        if self.needs_reference:
            from .. import distances as dist

            if reference is None:
                reference = self.load_reference()
            else:
                reason = self.check_reference(reference)
                if reason:
                    raise ModelSpecError(reason)
            metric = dict(self.metric or {})
            name = metric.pop("name")
            ref = values_from_node(reference)
            D = dist.cdist(values.metric_items(name), ref.metric_items(name), name, **metric)
            with blas_limit(len(values)):
                return model.predict(D)
        X = np.zeros((len(values), 1)) if self.model_name == "median" and values.is_ragged else values.matrix()
        with blas_limit(len(values)):
            return model.predict(X)

    def predict_from(self, source: Any, reference: Any = None) -> np.ndarray:
        """Predict (no provenance; use the ``predict`` calcfunction for that).

        Args:
            source: a :class:`~aiida_crystinv.data.CrystalDatasetData`, an
                :class:`~aiida_crystinv.data.InvariantsData` or features ``ArrayData`` of
                the model's descriptor, :class:`DescriptorValues`, or a list of pymatgen
                structures.
            reference: for kNN models, the training invariants (default: loaded by UUID).

        Returns:
            (n,) predictions in the target's unit (``self.target['unit']``).
        """
        from .dataset import CrystalDatasetData

        if isinstance(source, DescriptorValues):
            values = source
        elif isinstance(source, CrystalDatasetData):
            values = compute_values(self.descriptor, source.get_crystals(), source.ids)
        elif isinstance(source, Data):
            values = values_from_node(source)
        else:
            values = compute_values(self.descriptor, list(source))
        return self.predict_values(values, reference)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        state = f"pk={self.pk}" if self.is_stored else "unstored"
        d = self.base.attributes.get("descriptor", {}) or {}
        return f"<ModelData: {self.base.attributes.get('model', {}).get('name')} on {d.get('name')} ({state})>"


