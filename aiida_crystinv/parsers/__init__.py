"""Parsers of aiida-crystinv's CalcJobs (entry points ``aiida.parsers``)."""

from .worker import WorkerParser

__all__ = ["WorkerParser"]
