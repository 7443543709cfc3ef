"""The ``crystinv`` script: the command group with a profile loaded, created if there is none.

When no AiiDA profile exists at all (a fresh machine), the script creates one named
``crystinv`` with SQLite storage (``core.sqlite_dos``) in the AiiDA configuration
directory (``$AIIDA_PATH/.aiida``, default ``~/.aiida``) and aiida-core's ZeroMQ broker
(``core.zeromq``, as ``verdi presto`` chooses when RabbitMQ is absent), which runs inside
the daemon: commands run their processes in the ``crystinv`` process itself, so no service
(PostgreSQL, RabbitMQ) is needed, and ``--daemon`` starts the daemon (and with it the
broker) when it is not running. It says so in one line. An existing default profile is always used as it is, and no
existing profile is ever modified.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import warnings
from collections.abc import Sequence

__all__ = ("EMBEDDED_PROFILE_NAME", "ensure_profile", "create_embedded_profile", "main")

EMBEDDED_PROFILE_NAME = "crystinv"


def create_embedded_profile(config, name: str = EMBEDDED_PROFILE_NAME):
    """Create (and make default) a profile with SQLite storage and the ZeroMQ broker.

    :param config: the loaded :class:`aiida.manage.configuration.config.Config`.
    :param name: profile name; must not exist yet.
    :return: the new :class:`~aiida.manage.configuration.profile.Profile`.
    """
    from aiida.manage.configuration import create_profile, get_config_option
    from aiida.manage.configuration.settings import AiiDAConfigDir

    root = AiiDAConfigDir.get() / "repository"
    filepath = root / f"sqlite_dos_{name}"
    suffix = 1
    while filepath.exists() and any(filepath.iterdir()):  # never reuse another storage's files
        suffix += 1
        filepath = root / f"sqlite_dos_{name}_{suffix}"
    from aiida.plugins import BrokerFactory

    email = get_config_option("autofill.user.email") or "aiida@localhost"
    profile = create_profile(
        config,
        name=name,
        email=email,
        storage_backend="core.sqlite_dos",
        storage_config={"filepath": str(filepath)},
        broker_backend="core.zeromq",
        broker_config=BrokerFactory("core.zeromq").get_default_config(),
    )
    # like `verdi presto`: processes run with `aiida.engine.run` wait for their sub-processes
    # by polling, every 60 s by default
    config.set_option("runner.poll.interval", 1, scope=profile.name)
    config.set_default_profile(profile.name, overwrite=False)
    config.store()
    return profile, pathlib.Path(filepath)


def ensure_profile() -> None:
    """Load the current default profile; create the embedded one when no profile exists."""
    from aiida.common.exceptions import ConfigurationError
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    from aiida.cmdline.utils import echo

    manager = get_manager()
    if manager.get_profile() is not None:
        return
    try:
        with warnings.catch_warnings():  # "Creating AiiDA configuration folder": we say it below
            warnings.simplefilter("ignore", UserWarning)
            config = get_config(create=True)
    except ConfigurationError as exception:
        echo.echo_critical(f"cannot read the AiiDA configuration: {exception}")
    if not config.profile_names:
        try:
            profile, filepath = create_embedded_profile(config)
        except Exception as exception:  # noqa: BLE001 - report, never a traceback
            echo.echo_critical(f"could not create the embedded AiiDA profile: {exception}")
        echo.echo_report(
            f"created profile '{profile.name}' at {filepath}, storage SQLite (core.sqlite_dos), "
            "broker ZeroMQ (core.zeromq, started with the daemon); processes run inside this command "
            "unless you pass --daemon"
        )
    if config.default_profile_name is None:
        echo.echo_critical(
            f"there are AiiDA profiles ({', '.join(config.profile_names)}) but none is the default: "
            "choose one with `crystinv --profile NAME ...` or `verdi profile set-default NAME`"
        )
    try:
        manager.load_profile(config.default_profile_name)
    except Exception as exception:  # noqa: BLE001
        echo.echo_critical(f"cannot load the default profile {config.default_profile_name!r}: {exception}")


def _needs_profile(args: Sequence[str]) -> bool:
    """Whether to load (or create) the default profile before running ``args``.

    Not for ``--help`` or a bare invocation (no storage is touched, so no profile is
    created), nor when the group's own ``--profile`` option names one.
    """
    if not args or "-h" in args or "--help" in args:
        return False
    i = 0
    while i < len(args):  # the group's options come before the subcommand's name
        arg = args[i]
        if arg in ("-p", "--profile") or arg.startswith("--profile="):
            return False
        if not arg.startswith("-"):
            break
        i += 1
    return True


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``crystinv`` console script."""
    from .root import cmd_crystinv

    args = list(sys.argv[1:] if args is None else args)
    if hasattr(signal, "SIGPIPE"):  # `crystinv list | head`: stop quietly when the reader goes away
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Ctrl-C and SIGTERM before a command runs (loading the profile, parsing): one line and
    # 130 / 143 too; a command's own handling (`utils.clean_errors`) takes over inside it
    install_early_signal_handlers()
    try:
        if _needs_profile(args):
            ensure_profile()
        cmd_crystinv.main(args=args, prog_name="crystinv")
    except KeyboardInterrupt:
        _stop_early(signal.SIGINT, None)


def install_early_signal_handlers() -> None:
    """SIGINT / SIGTERM from the start of the ``crystinv`` script (while Python imports its
    modules) until a command runs: :func:`_stop_early` (one line, exit 130 / 143)."""
    signal.signal(signal.SIGINT, _stop_early)
    signal.signal(signal.SIGTERM, _stop_early)


def _stop_early(signum: int, _frame: object) -> None:
    """A signal outside a command's run (before it, or after its processes finished):
    nothing is running, so nothing to tidy; say what the command kept, exit 130 / 143
    (:data:`~aiida_crystinv.cli.interrupt.EXIT_SIGINT`, ``EXIT_SIGTERM``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    utils = sys.modules.get("aiida_crystinv.cli.utils")  # not imported here: this may run while modules load
    kept = list(getattr(utils, "_KEPT", []))
    words, status = ("terminated (SIGTERM)", 143) if signum == signal.SIGTERM else ("interrupted (Ctrl-C)", 130)
    said = f"after its processes finished; kept: {'; '.join(kept)}" if kept else "before the command started: nothing was stored"
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed pipe: nothing to flush to
        pass
    sys.stderr.write(f"Critical: {words} {said}\n")
    sys.stderr.flush()
    os._exit(status)
