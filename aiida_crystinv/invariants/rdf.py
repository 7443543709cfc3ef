"""Placeholder: being written."""


def rdf(*args, **kwargs):  # pragma: no cover
    raise NotImplementedError
