"""Learning on crystal invariants. Pure numerics: no AiiDA import.

* descriptors -- :func:`describe` (name + parameters -> (n, d) features: isometry-invariant
  parts and the parts of :mod:`aiida_crystinv.representations`), :data:`FEATURES`
  registry, :func:`describe_spec`.
* models -- scikit-learn estimators (``BaseEstimator`` + ``RegressorMixin``: ``clone``,
  ``Pipeline``, ``GridSearchCV``, ``cross_val_score`` work on them):
  :class:`KNNRegressor` (precomputed distances, tagged pairwise),
  :class:`KernelRidgeRegressor` (Laplacian / RBF), :class:`FeatureKNNRegressor`,
  :class:`EnsembleRegressor`, :class:`StackRegressor` (blend weights learned on the
  training records), :class:`MedianRegressor` (``DummyRegressor(strategy='median')``);
  :func:`build_model` (JSON-able spec -> model), :func:`model_from_arrays`
  (pickle-free export via ``model.to_arrays()``), :func:`is_precomputed` (the pairwise
  tag: the model takes a distance matrix).
* presets -- the documented recipes (:mod:`aiida_crystinv.learning.presets`): the MP
  bulk-modulus descriptor and :func:`~aiida_crystinv.learning.presets.bulk_modulus_model`.
* validation -- :func:`cross_validate` (k-fold or hold-out, with the median baseline),
  :func:`cross_val_predict` (``sklearn.model_selection.cross_val_predict``),
  :func:`fit_predict_split`.
* splits -- :func:`kfold_indices` (``KFold(shuffle=True, random_state=seed)``),
  :func:`fold_labels`, :func:`holdout_split` (``ShuffleSplit`` / ``train_test_split``).
* metrics -- :func:`mae`, :func:`median_ae`, :func:`rmse`, :func:`r2`,
  :func:`regression_metrics` (``sklearn.metrics``).
* plots -- :func:`parity_plot`, :func:`parity_png` (PNG bytes, Agg backend).
"""

from .descriptors import (
    FEATURES,
    Feature,
    SiteTable,
    describe,
    describe_spec,
    feature_defaults,
    feature_names,
    register_feature,
    site_table,
)
from .errors import TargetError, TooFewRecordsError
from .metrics import mae, median_ae, r2, regression_metrics, rmse
from .models import (
    MODELS,
    TARGET_TRANSFORMS,
    EnsembleRegressor,
    FeatureKNNRegressor,
    KernelRidgeRegressor,
    KNNRegressor,
    MedianRegressor,
    StackRegressor,
    build_model,
    check_target,
    inverse_transform_target,
    is_precomputed,
    model_from_arrays,
    transform_target,
)
from .plots import parity_plot, parity_png
from .splits import fold_labels, holdout_split, kfold_indices
from .validation import cross_val_predict, cross_validate, fit_predict_split

__all__ = [
    "FEATURES", "Feature", "SiteTable", "describe", "describe_spec", "feature_defaults",
    "feature_names", "register_feature", "site_table",
    "mae", "median_ae", "r2", "regression_metrics", "rmse",
    "MODELS", "TARGET_TRANSFORMS", "EnsembleRegressor", "FeatureKNNRegressor", "KernelRidgeRegressor",
    "KNNRegressor", "MedianRegressor", "StackRegressor", "build_model", "check_target", "inverse_transform_target", "is_precomputed",
    "model_from_arrays", "transform_target",
    "parity_plot", "parity_png", "fold_labels", "holdout_split", "kfold_indices",
    "cross_val_predict", "cross_validate", "fit_predict_split",
    "TargetError", "TooFewRecordsError",
]
