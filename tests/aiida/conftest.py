"""AiiDA test fixtures: a temporary profile on SQLite (default) or PostgreSQL, a broker.

The fixtures of :mod:`aiida.tools.pytest_fixtures` are imported here (the equivalent of
``pytest_plugins = ['aiida.tools.pytest_fixtures']`` limited to this folder, so the pure
tests never create a profile). Two environment variables select the services:

``CRYSTINV_TEST_STORAGE``
    ``sqlite`` (default): ``core.sqlite_dos`` in a temporary folder, no service needed.
    ``psql``: ``core.psql_dos`` on the PostgreSQL server at ``CRYSTINV_PG_HOST:PORT``
    (default 127.0.0.1:5432, user ``postgres``, trust authentication). pgtest cannot start
    a cluster as root, so :func:`postgres_cluster` is overridden to create a database on
    that server (``TEMPLATE template0``) and drop it at the end of the session.
``CRYSTINV_TEST_BROKER``
    ``zeromq`` (default): the broker bundled with aiida-core (started for the session).
    ``rabbitmq``: RabbitMQ at 127.0.0.1:5672 (guest/guest). ``none``: no broker (daemon
    tests skip).

A missing service skips the tests that need it with the reason, except when ``CI`` is
true, where it fails them.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

# The daemon starts `verdi` from PATH: make it the one of this interpreter (before aiida
# looks it up at import time).
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

import pytest  # noqa: E402
from aiida.tools.pytest_fixtures import *  # noqa: E402,F401,F403 - the AiiDA fixtures

from ..conftest import IN_CI, dataset_path  # noqa: E402,F401 - re-exported for the tests


def _fix_verdi_bin() -> None:
    import shutil

    import aiida.engine.daemon.client as client

    if client.VERDI_BIN is None:
        client.VERDI_BIN = shutil.which("verdi")


_fix_verdi_bin()

STORAGE = os.environ.get("CRYSTINV_TEST_STORAGE", "sqlite").lower()
BROKER = os.environ.get("CRYSTINV_TEST_BROKER", "zeromq").lower()
PG_HOST = os.environ.get("CRYSTINV_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CRYSTINV_PG_PORT", "5432"))
PG_USER = os.environ.get("CRYSTINV_PG_USER", "postgres")
RMQ_HOST = os.environ.get("CRYSTINV_RMQ_HOST", "127.0.0.1")
RMQ_PORT = int(os.environ.get("CRYSTINV_RMQ_PORT", "5672"))


def service_missing(what: str) -> None:
    """Skip (or, in CI, fail) because a service is not available."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: services must be available)")
    pytest.skip(what)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """Record the storage backend on each test; silence SQLAlchemy's session warnings."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.user_properties.append(("aiida_storage", STORAGE))
            item.add_marker(pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore:Creating AiiDA configuration folder:UserWarning"))


def pytest_report_header(config):
    return f"aiida-crystinv: storage={STORAGE} broker={BROKER}"


class ServerPostgresCluster:
    """Stand-in for aiida's pgtest-based cluster: databases on a running server."""

    def __init__(self, host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER):
        self.host, self.port, self.user = host, port, user
        self.databases: list[str] = []

    def _connect(self):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True)

    def create_database(self, database_name=None, database_username=None, database_password=None) -> dict:
        name = database_name or f"crystinv_test_{uuid.uuid4().hex[:12]}"
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        self.databases.append(name)
        return {
            "database_engine": "postgresql_psycopg",
            "database_name": name,
            "database_username": self.user,
            "database_password": database_password or "",
            "database_hostname": self.host,
            "database_port": self.port,
        }

    def close(self) -> None:
        if not self.databases:
            return
        try:
            with self._connect() as conn:
                for name in self.databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:  # noqa: BLE001 - best effort clean-up
            pass
        self.databases.clear()


@pytest.fixture(scope="session")
def postgres_cluster():
    """Databases on the running PostgreSQL server (overrides aiida's pgtest fixture)."""
    if not port_open(PG_HOST, PG_PORT):
        service_missing(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        service_missing("psycopg is not installed")
    cluster = ServerPostgresCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session", autouse=True)
def aiida_profile(request, aiida_config, aiida_profile_factory):
    """The session's test profile, on the storage and broker chosen by the environment."""
    kwargs: dict = {}
    if STORAGE == "psql":
        kwargs["storage_backend"] = "core.psql_dos"
        kwargs["storage_config"] = request.getfixturevalue("config_psql_dos")()
    elif STORAGE != "sqlite":
        pytest.exit(f"CRYSTINV_TEST_STORAGE must be 'sqlite' or 'psql', got {STORAGE!r}", returncode=4)
    if BROKER == "rabbitmq":
        if not port_open(RMQ_HOST, RMQ_PORT):
            service_missing(f"RabbitMQ is not reachable at {RMQ_HOST}:{RMQ_PORT}")
        kwargs["broker_backend"] = "core.rabbitmq"
        kwargs["broker_config"] = {
            "broker_protocol": "amqp",
            "broker_username": "guest",
            "broker_password": "guest",
            "broker_host": RMQ_HOST,
            "broker_port": RMQ_PORT,
            "broker_virtual_host": "",
        }
    elif BROKER == "zeromq":
        kwargs["broker_backend"] = "core.zeromq"
    elif BROKER != "none":
        pytest.exit(f"CRYSTINV_TEST_BROKER must be 'zeromq', 'rabbitmq' or 'none', got {BROKER!r}", returncode=4)
    with aiida_profile_factory(aiida_config, **kwargs) as profile:
        yield profile


@pytest.fixture(scope="session")
def daemon_client(aiida_profile):
    """The test profile's daemon client (overrides aiida's: a longer circus timeout, since
    the machine may be busy, and a stop at the end of the session that cannot hang)."""
    import time

    from aiida.engine.daemon import get_daemon_client
    from aiida.engine.daemon.client import DaemonException
    from aiida.manage import get_config

    config = get_config()
    config.set_option("daemon.timeout", 60, scope=aiida_profile.name)
    config.store()
    client = get_daemon_client(aiida_profile.name)
    try:
        yield client
    finally:
        try:
            if client.is_daemon_running:
                client.stop_daemon(wait=True)
        except DaemonException:
            pass
        deadline = time.monotonic() + 30
        while client.is_daemon_running and time.monotonic() < deadline:
            time.sleep(0.5)
        if client.is_daemon_running:  # last resort: the daemon this session started
            import signal

            pid = client.get_circus_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


@pytest.fixture
def daemon_ready(aiida_profile):
    """Skip (fail in CI) when the profile has no broker to talk to a daemon."""
    if aiida_profile.process_control_backend is None:
        service_missing("the test profile has no broker (CRYSTINV_TEST_BROKER=none): no daemon")
    return aiida_profile


@pytest.fixture(scope="session")
def mp_records():
    """The first 30 records of the real MP elasticity file (skips when it is absent)."""
    import gzip
    import json

    path = dataset_path("mp_elasticity_binaries.json.gz")
    with gzip.open(path, "rt") as handle:
        return json.load(handle)[:30]


@pytest.fixture
def csv_slice(tmp_path):
    """Factory: the header and first ``n`` rows of a shared CSV dataset, as a temporary file."""
    import csv
    import gzip

    def make(name: str, n: int = 12, gz: bool = False) -> Path:
        path = dataset_path(name)
        csv.field_size_limit(1 << 30)
        with gzip.open(path, "rt", newline="") as handle:
            reader = csv.reader(handle)
            rows = [next(reader) for _ in range(n + 1)]
        out = tmp_path / (Path(name).stem if not gz else name)
        opener = gzip.open if gz else open
        with opener(out, "wt", newline="") as handle:
            csv.writer(handle).writerows(rows)
        return out

    return make


from .services import *  # noqa: E402,F401,F403 - SLURM/SSH computers (tests/services/setup.sh)
