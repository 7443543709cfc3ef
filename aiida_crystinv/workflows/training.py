"""``TrainingWorkChain``: evaluate and train one model on one descriptor of a dataset.

dataset + descriptor spec + model spec + target + split ->

* ``metrics`` -- k-fold cross-validation, a random hold-out, or an explicit test dataset
  (MAE, median absolute error, RMSE, R^2, next to the median-predictor baseline);
* ``predictions`` -- the cross-validated (or hold-out / test) predictions, one node;
* ``model`` -- a :class:`~aiida_crystinv.data.ModelData` fitted on *all* records of the
  training dataset (the model to deploy; the metrics say how well such a model does);
* ``parity_plot`` -- a PNG ``SinglefileData``.

Existing invariants of the dataset (same descriptor, same parameters), features and
distance matrices are found by query and reused instead of recomputed; missing
invariants are computed by an :class:`~aiida_crystinv.workflows.InvariantsWorkChain`.
Everything runs as a handful of calcfunctions (a few nodes per model, none per
structure).

Example::

    from aiida import orm
    from aiida.engine import run
    from aiida_crystinv.workflows.training import TrainingWorkChain

    results = run(TrainingWorkChain, dataset=dataset, target=orm.Str('ewald_energy_per_atom'),
                  descriptor=orm.Dict({'name': 'pdd', 'k': 50}),
                  model=orm.Dict({'name': 'knn', 'k': [1, 3, 5, 10]}),
                  split=orm.Dict({'kind': 'kfold', 'n_splits': 5, 'seed': 0}))
    results['metrics']['mae'], results['model'].predict_from(other_dataset)
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.engine import WorkChain, if_

from ..calculations.learning import (
    compute_features,
    cross_validate,
    parity_plot,
    predict,
    train_model,
)
from ..calculations.ports import check_descriptor, check_model, check_split, spec_of
from ..exit_codes import add_exit_codes, describe_failure, relay
from ..specs import SpecError, parse_descriptor
from ..specs.learning import parse_split, resolve_pair
from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..data._arrays import jsonable
from ..data.model import ModelData
from ..data.values import FEATURES_ATTRIBUTE, ModelSpecError, descriptor_incompatibility, spec_hash, values_spec

__all__ = ["TrainingWorkChain", "find_invariants", "find_features", "find_distances", "launch_training"]


# ------------------------------------------------------------------------------- queries


def find_invariants(dataset: CrystalDatasetData, spec: dict[str, Any]) -> InvariantsData | None:
    """The newest stored invariants of every record of ``dataset`` with this (normalised,
    ``kind: invariants``) descriptor and exactly these parameters, or None."""
    qb = orm.QueryBuilder().append(
        InvariantsData,
        filters={
            "attributes.dataset_uuid": dataset.uuid,
            "attributes.descriptor": spec["name"],
            "attributes.n_records": len(dataset),
        },
        project="*",
    )
    qb.order_by({InvariantsData: {"id": "desc"}})
    params = jsonable(spec["params"])
    ids = None
    for (node,) in qb.iterall():
        if jsonable(node.parameters) != params or not _is_result(node):
            continue
        ids = dataset.ids if ids is None else ids
        if node.ids == ids:
            return node
    return None


def find_features(dataset: CrystalDatasetData, spec: dict[str, Any]) -> orm.ArrayData | None:
    """The newest features ``ArrayData`` of ``dataset`` for this (normalised, ``kind:
    features``) descriptor, or None."""
    qb = orm.QueryBuilder().append(
        orm.ArrayData,
        filters={
            f"attributes.{FEATURES_ATTRIBUTE}.dataset_uuid": dataset.uuid,
            f"attributes.{FEATURES_ATTRIBUTE}.spec_sha256": spec_hash(spec),
        },
        project="*",
    )
    qb.order_by({orm.ArrayData: {"id": "desc"}})
    return next((node for (node,) in qb.iterall() if _is_result(node)), None)


def _is_result(node: orm.Node) -> bool:
    """Made directly or by a process that finished ok (never the output of a killed,
    excepted or unfinished process, which ``crystinv clean`` deletes)."""
    creator = node.creator
    return creator is None or creator.is_finished_ok


def find_distances(invariants: InvariantsData, metric: dict[str, Any]) -> DistancesData | None:
    """The newest condensed distance matrix of ``invariants`` made by ``compute_distances``
    with this metric and these parameters, or None."""
    params = {k: v for k, v in metric.items() if k != "name" and v is not None}
    qb = orm.QueryBuilder()
    qb.append(InvariantsData, filters={"id": invariants.pk}, tag="inv")
    qb.append(
        orm.CalcFunctionNode,
        with_incoming="inv",
        edge_filters={"label": "invariants"},
        filters={"attributes.exit_status": 0},
        tag="calc",
    )
    qb.append(
        DistancesData,
        with_incoming="calc",
        filters={"attributes.layout": "condensed", "attributes.metric": metric["name"]},
        project="*",
    )
    qb.order_by({DistancesData: {"id": "desc"}})
    for (node,) in qb.iterall():
        got = {k: v for k, v in node.metric_parameters.items() if v is not None}
        if jsonable(got) == jsonable(params):
            return node
    return None


# ------------------------------------------------------------------------------- workchain


def validate_training_inputs(inputs: Any, _ctx: Any = None) -> str | None:
    """The model must fit the descriptor (kNN needs invariants and a metric that applies to
    them; vector models need vectors), and given values must be of the descriptor's kind."""
    if "descriptor" not in inputs or "model" not in inputs:
        return None
    try:
        descriptor = parse_descriptor(spec_of(inputs["descriptor"]))
        resolve_pair(inputs["model"].get_dict(), descriptor)
    except SpecError as exc:
        return str(exc)
    kind = descriptor.kind
    for key in ("invariants", "features", "test_invariants", "test_features"):
        if key in inputs and key.endswith("invariants") != (kind == "invariants"):
            return f"input {key!r} does not fit a {kind} descriptor ({descriptor.name!r})"
    return None


class TrainingWorkChain(WorkChain):
    """Cross-validate (or test), train and plot one model on one descriptor of a dataset."""

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("dataset", valid_type=CrystalDatasetData, help="The training records and their targets.")
        spec.input("target", valid_type=orm.Str, help="Name of the target to learn (a target of the dataset).")
        spec.input(
            "descriptor",
            valid_type=(orm.Dict, orm.Str),
            validator=check_descriptor,
            help="{'name': 'pdd', 'k': 50} (invariants: amd, pdd, grid, rdf, composition) or "
            "{'name': 'amd+element_stats', 'kind': 'features', ...}.",
        )
        spec.input(
            "model",
            valid_type=orm.Dict,
            validator=check_model,
            help="{'name': 'knn' | 'krr' | 'median', ...parameters}; knn takes a 'metric'.",
        )
        spec.input(
            "split",
            valid_type=orm.Dict,
            required=False,
            validator=check_split,
            help="{'kind': 'kfold', 'n_splits': 5, 'seed': 0} (default) or {'kind': 'holdout', "
            "'test_fraction': 0.2, 'seed': 0}; ignored when a test_dataset is given.",
        )
        spec.input(
            "test_dataset",
            valid_type=CrystalDatasetData,
            required=False,
            help="An explicit test set (e.g. your own CSP structures): the model trained on the whole "
            "dataset is evaluated on it instead of cross-validation.",
        )
        spec.input("invariants", valid_type=InvariantsData, required=False, help="Precomputed invariants of the dataset.")
        spec.input("features", valid_type=orm.ArrayData, required=False, help="Precomputed features of the dataset.")
        spec.input("test_invariants", valid_type=InvariantsData, required=False, help="Precomputed invariants of the test set.")
        spec.input("test_features", valid_type=orm.ArrayData, required=False, help="Precomputed features of the test set.")
        spec.input("distances", valid_type=DistancesData, required=False, help="kNN: precomputed pairwise distances.")
        spec.input("chunk_size", valid_type=orm.Int, required=False, help="Records per invariants chunk (InvariantsWorkChain).")

        spec.outline(
            cls.setup,
            cls.prepare_descriptor,
            cls.inspect_descriptor,
            if_(cls.needs_distances)(cls.prepare_distances),
            if_(cls.has_test_set)(cls.train, cls.evaluate_on_test_set).else_(cls.cross_validate, cls.train),
            cls.plot,
            cls.results,
        )

        spec.output("metrics", valid_type=orm.Dict, help="Metrics of the cross-validated / hold-out / test predictions.")
        spec.output("predictions", valid_type=orm.ArrayData, help="ids, y_true, y_pred (and fold) of the evaluation.")
        spec.output("model", valid_type=ModelData, help="The model fitted on every record of the dataset.")
        spec.output("training_metrics", valid_type=orm.Dict, help="Fit errors on the training records, fitted hyperparameters.")
        spec.output("parity_plot", valid_type=orm.SinglefileData, required=False, help="Parity plot (PNG).")
        spec.output("invariants", valid_type=InvariantsData, required=False, help="Invariants of the dataset used.")
        spec.output("features", valid_type=orm.ArrayData, required=False, help="Features of the dataset used.")
        spec.output("distances", valid_type=DistancesData, required=False, help="Pairwise distances used by kNN.")

        spec.inputs.validator = validate_training_inputs
        add_exit_codes(
            spec, "ERROR_MISSING_TARGET", "ERROR_INVALID_TARGET", "ERROR_TOO_FEW_RECORDS", "ERROR_INVALID_SPEC",
            "ERROR_INCOMPATIBLE_INPUTS", "ERROR_INVARIANTS_FAILED", "ERROR_DISTANCES_STEP_FAILED",
            "ERROR_EVALUATION_FAILED", "ERROR_TRAINING_FAILED", "ERROR_PLOT_FAILED",
        )

    # ------------------------------------------------------------------ helpers
    def _child_failed(self, node, fallback: str):
        """Pass a calcfunction's input-problem code on as it is, else ``fallback``."""
        return relay(self.exit_codes, node, fallback, passed=(
            "ERROR_MISSING_TARGET", "ERROR_INVALID_TARGET", "ERROR_TOO_FEW_RECORDS", "ERROR_INVALID_SPEC",
            "ERROR_INCOMPATIBLE_INPUTS"))

    def _values_input(self, test: bool = False) -> dict[str, Any]:
        key = "test_values" if test else "train_values"
        node = self.ctx.get(key)
        if node is None:
            return {}
        return {"invariants": node} if isinstance(node, InvariantsData) else {"features": node}

    # ------------------------------------------------------------------ steps
    def setup(self):
        """Check the target, descriptor, model and split before anything is computed."""
        dataset = self.inputs.dataset
        target = self.inputs.target.value
        for label, ds in (("dataset", dataset), ("test_dataset", self.inputs.get("test_dataset"))):
            if ds is not None and target not in ds.target_names:
                return self.exit_codes.ERROR_MISSING_TARGET.format(
                    message=f"the {label} <{ds.pk}> has no target {target!r}; its targets are {ds.target_names or 'none'}"
                )
        # the specs and their combination were validated at the ports
        descriptor = parse_descriptor(spec_of(self.inputs.descriptor))
        self.ctx.descriptor = descriptor.normalised()
        self.ctx.model_spec = resolve_pair(self.inputs.model.get_dict(), descriptor)
        self.ctx.split = parse_split(spec_of(self.inputs.get("split"))).as_dict()
        n = len(dataset)
        if "test_dataset" not in self.inputs:
            if self.ctx.split["kind"] == "kfold" and n < self.ctx.split["n_splits"]:
                return self.exit_codes.ERROR_TOO_FEW_RECORDS.format(
                    message=f"{n} records cannot be split into {self.ctx.split['n_splits']} folds"
                )
            if self.ctx.split["kind"] == "holdout" and not 1 <= round(self.ctx.split["test_fraction"] * n) < n:
                return self.exit_codes.ERROR_TOO_FEW_RECORDS.format(
                    message=f"a hold-out of {self.ctx.split['test_fraction']} of {n} records leaves an empty set"
                )
        for key in ("invariants", "features", "test_invariants", "test_features"):
            if key in self.inputs:
                try:
                    reason = descriptor_incompatibility(self.ctx.descriptor, values_spec(self.inputs[key]))
                except ModelSpecError as exc:
                    reason = str(exc)
                if reason:
                    reason = reason.replace("the model was trained on", "the descriptor asked for is")
                    return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(message=f"input {key!r}: {reason}")
        return None

    def has_test_set(self) -> bool:
        return "test_dataset" in self.inputs

    def needs_distances(self) -> bool:
        return self.ctx.model_spec["name"] == "knn"

    def _find_or_launch(self, dataset: CrystalDatasetData, given_key: str, role: str) -> Any:
        """The descriptor values of ``dataset``: given, found by query, or launched."""
        from .invariants import InvariantsWorkChain

        spec = self.ctx.descriptor
        if given_key in self.inputs:
            return self.inputs[given_key]
        if spec["kind"] == "invariants":
            found = find_invariants(dataset, spec)
            if found is not None:
                self.report(f"reusing {spec['name']} invariants <{found.pk}> of dataset <{dataset.pk}>")
                return found
            inputs = {"dataset": dataset, "descriptor": orm.Dict({"name": spec["name"], **spec["params"]})}
            if "chunk_size" in self.inputs:
                inputs["chunk_size"] = self.inputs.chunk_size
            inputs["metadata"] = {"call_link_label": f"invariants_{role}"}
            future = self.submit(InvariantsWorkChain, **inputs)
            self.report(f"computing {spec['name']} invariants of dataset <{dataset.pk}> in {future.process_label} <{future.pk}>")
            self.to_context(**{f"{role}_invariants_process": future})
            return None
        found = find_features(dataset, spec)
        if found is not None:
            self.report(f"reusing {spec['name']} features <{found.pk}> of dataset <{dataset.pk}>")
            return found
        results, node = compute_features.run_get_node(
            dataset=dataset,
            descriptor=orm.Dict({"name": spec["name"], "kind": "features", "params": spec["params"]}),
            metadata={"call_link_label": f"features_{role}"},
        )
        if not node.is_finished_ok:
            self.ctx.failed = self._child_failed(node, "ERROR_INVARIANTS_FAILED")
            return None
        return results["features"]

    def prepare_descriptor(self):
        """Find (by query) or compute the descriptor of the training and test records."""
        self.ctx.failed = None
        self.ctx.train_values = self._find_or_launch(self.inputs.dataset, "invariants" if self.ctx.descriptor["kind"] == "invariants" else "features", "train")
        if self.ctx.failed:
            return self.ctx.failed
        if self.has_test_set():
            key = "test_invariants" if self.ctx.descriptor["kind"] == "invariants" else "test_features"
            self.ctx.test_values = self._find_or_launch(self.inputs.test_dataset, key, "test")
            if self.ctx.failed:
                return self.ctx.failed
        return None

    def inspect_descriptor(self):
        """Collect invariants computed by sub-workflows."""
        for role, key in (("train", "train_values"), ("test", "test_values")):
            proc = self.ctx.get(f"{role}_invariants_process")
            if proc is None:
                continue
            if not proc.is_finished_ok:
                return self.exit_codes.ERROR_INVARIANTS_FAILED.format(
                    message=describe_failure(proc)
                )
            self.ctx[key] = proc.outputs.invariants
        return None

    def prepare_distances(self):
        """kNN: all pairwise distances of the training invariants (given, queried or computed)."""
        from ..calculations.functions import compute_distances

        if "distances" in self.inputs:
            self.ctx.distances = self.inputs.distances
            return None
        metric = self.ctx.model_spec["metric"]
        found = find_distances(self.ctx.train_values, metric)
        if found is not None:
            self.report(f"reusing {metric['name']} distances <{found.pk}>")
            self.ctx.distances = found
            return None
        results, node = compute_distances.run_get_node(
            invariants=self.ctx.train_values, metric=orm.Dict(metric), metadata={"call_link_label": "distances"}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DISTANCES_STEP_FAILED.format(message=describe_failure(node))
        self.ctx.distances = results["distances"]
        return None

    def _common(self) -> dict[str, Any]:
        inputs = {"dataset": self.inputs.dataset, "target": self.inputs.target, "model": self.inputs.model}
        inputs.update(self._values_input())
        if self.ctx.get("distances") is not None:
            inputs["distances"] = self.ctx.distances
        return inputs

    def cross_validate(self):
        """Cross-validated (or hold-out) predictions and their metrics."""
        inputs = self._common()
        inputs["split"] = self.inputs.split if "split" in self.inputs else orm.Dict(self.ctx.split)
        results, node = cross_validate.run_get_node(**inputs, metadata={"call_link_label": "cross_validate"})
        if not node.is_finished_ok:
            return self._child_failed(node, "ERROR_EVALUATION_FAILED")
        self.ctx.predictions = results["predictions"]
        self.ctx.metrics = results["metrics"]
        m = results["metrics"]
        self.report(
            f"{self.ctx.split['kind']} MAE {m['mae']:.4g} {m['unit']} (median predictor {m['baseline_mae']:.4g}), "
            f"R2 {m['r2']:.3f}, n={m['n']}"
        )
        return None

    def train(self):
        """The model fitted on every record of the dataset."""
        results, node = train_model.run_get_node(**self._common(), metadata={"call_link_label": "train_model"})
        if not node.is_finished_ok:
            return self._child_failed(node, "ERROR_TRAINING_FAILED")
        self.ctx.model = results["model"]
        self.ctx.training_metrics = results["metrics"]
        return None

    def evaluate_on_test_set(self):
        """Predict the explicit test set with the trained model."""
        inputs = {"model": self.ctx.model, "dataset": self.inputs.test_dataset}
        inputs.update(self._values_input(test=True))
        if self.ctx.model.needs_reference:
            inputs["reference"] = self.ctx.train_values
        results, node = predict.run_get_node(**inputs, metadata={"call_link_label": "predict_test"})
        if not node.is_finished_ok:
            return self._child_failed(node, "ERROR_EVALUATION_FAILED")
        self.ctx.predictions = results["predictions"]
        self.ctx.metrics = results["metrics"]
        m = results["metrics"]
        self.report(f"test-set MAE {m['mae']:.4g} {m['unit']}, R2 {m['r2']:.3f}, n={m['n']}")
        return None

    def plot(self):
        """The parity plot of the evaluation."""
        results, node = parity_plot.run_get_node(predictions=self.ctx.predictions, metadata={"call_link_label": "parity_plot"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_PLOT_FAILED.format(message=describe_failure(node))
        self.ctx.plot = results["plot"]
        return None

    def results(self):
        """Attach the outputs."""
        self.out("metrics", self.ctx.metrics)
        self.out("predictions", self.ctx.predictions)
        self.out("model", self.ctx.model)
        self.out("training_metrics", self.ctx.training_metrics)
        self.out("parity_plot", self.ctx.plot)
        values = self.ctx.train_values
        self.out("invariants" if isinstance(values, InvariantsData) else "features", values)
        if self.ctx.get("distances") is not None:
            self.out("distances", self.ctx.distances)


def launch_training(
    dataset: CrystalDatasetData,
    target: str,
    descriptor: dict[str, Any] | str,
    model: dict[str, Any],
    split: dict[str, Any] | None = None,
    test_dataset: CrystalDatasetData | None = None,
    submit: bool = False,
):
    """Run (or submit) a :class:`TrainingWorkChain`; returns ``(outputs, node)`` (outputs
    are ``{}`` when submitted)."""
    from aiida.engine import submit as submit_process

    from .._runner import run_get_node_promptly

    inputs: dict[str, Any] = {
        "dataset": dataset,
        "target": orm.Str(target),
        "descriptor": orm.Dict({"name": descriptor} if isinstance(descriptor, str) else dict(descriptor)),
        "model": orm.Dict(dict(model)),
    }
    if split is not None:
        inputs["split"] = orm.Dict(dict(split))
    if test_dataset is not None:
        inputs["test_dataset"] = test_dataset
    if submit:
        return {}, submit_process(TrainingWorkChain, **inputs)
    return run_get_node_promptly(TrainingWorkChain, **inputs)
