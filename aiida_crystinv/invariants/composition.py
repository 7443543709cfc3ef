"""Placeholder: being written."""


def composition(*args, **kwargs):  # pragma: no cover
    raise NotImplementedError
def composition_feature_names(*a, **k): raise NotImplementedError
