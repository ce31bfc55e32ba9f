"""A private, throwaway PostgreSQL cluster for tests that need a server which really checks passwords.

``PostgresCluster`` runs ``initdb`` and ``pg_ctl`` from the newest ``/usr/lib/postgresql/*/bin``
(or ``pg_config --bindir``, or ``$PATH``) in a temporary directory, on a free TCP port:
TCP logins from 127.0.0.1 need a SCRAM-SHA-256 password, the superuser may also log in
without one over the cluster's own Unix socket, and every statement is logged to
``log_file``. The server is stopped and the directory deleted on exit. As root (PostgreSQL
refuses to run as root) the binaries run as the ``postgres`` system user through ``runuser``.

    with PostgresCluster() as cluster:
        psycopg.connect(cluster.admin_dsn)

Nothing here is imported by Strongroom itself.
"""

from __future__ import annotations

__all__ = ["PostgresCluster", "PostgresUnavailableError", "find_postgres_bindir"]

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

#: Where Debian/Ubuntu install the server binaries, one directory per major version.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
_START_ATTEMPTS = 3


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries (or a way to run them) are not available here."""


def _has_server(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def _version_key(bindir: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin$", bindir)
    return tuple(int(part) for part in match.group(1).split(".") if part) if match else ()


def find_postgres_bindir() -> Path:
    """The directory of ``initdb``/``pg_ctl``/``postgres``: the newest Debian-style install, else
    ``pg_config --bindir``, else wherever ``initdb`` is on ``$PATH``."""
    for found in sorted(glob.glob(DEBIAN_BINDIRS), key=_version_key, reverse=True):
        if _has_server(Path(found)):
            return Path(found)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(  # noqa: S603 - pg_config from $PATH, no shell
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and _has_server(Path(out.stdout.strip())):
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb and _has_server(Path(initdb).parent):
        return Path(initdb).parent
    raise PostgresUnavailableError(
        f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {DEBIAN_BINDIRS}, "
        "pg_config --bindir or $PATH; install the postgresql package"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """A PostgreSQL server of its own, for one test module (start it once: ``initdb`` takes a second).

    ``admin_dsn`` is a URL for the superuser over TCP with its password; ``socket_conninfo`` is a
    conninfo for the superuser over the Unix socket, without a password. Both name the
    ``postgres`` database. ``log_file`` receives every statement (``log_statement = all``).
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self._bindir = bindir
        self._root: Path | None = None
        self._running = False
        self._password = secrets.token_urlsafe(24)
        self.host = "127.0.0.1"
        self.port = 0
        self.superuser = SUPERUSER

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"PostgresCluster(port={self.port}, {state})"

    # -- where things are ---------------------------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is None:
            raise PostgresUnavailableError("the cluster has not been started")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def superuser_password(self) -> str:
        return self._password

    @property
    def admin_dsn(self) -> str:
        """The superuser over TCP, with its password (a secret: do not print it)."""
        return f"postgresql://{self.superuser}:{self._password}@{self.host}:{self.port}/postgres"

    @property
    def socket_conninfo(self) -> str:
        """The superuser over the Unix socket (trusted, no password)."""
        return f"host={self.socket_dir} port={self.port} user={self.superuser} dbname=postgres"

    def log_text(self) -> str:
        """What the server has logged so far (every statement it was sent)."""
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    # -- running ----------------------------------------------------------------------------------

    def _command(self, tool: str, *args: str) -> list[str]:
        assert self._bindir is not None
        argv = [str(self._bindir / tool), *args]
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailableError("running as root needs runuser to start PostgreSQL as postgres")
            return [runuser, "-u", SYSTEM_USER, "--", *argv]
        return argv

    def _run(self, tool: str, *args: str) -> None:
        argv = self._command(tool, *args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 - no shell
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresUnavailableError(f"{tool} failed (exit {done.returncode}): " + " | ".join(detail))

    def _give_to_system_user(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        import pwd

        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailableError(
                f"running as root needs a {SYSTEM_USER!r} system user to run PostgreSQL"
            ) from None
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> PostgresCluster:
        """``initdb``, configure and start the server; returns ``self``."""
        if self._running:
            return self
        if self._bindir is None:
            self._bindir = find_postgres_bindir()
        self._root = Path(tempfile.mkdtemp(prefix="strongroom-pg-"))
        try:
            self._init()
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self._password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        self.socket_dir.mkdir(mode=0o700)
        self._give_to_system_user(self.root, pwfile, self.socket_dir)
        try:
            self._run(
                "initdb",
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(
            "# written by strongroom.testing.pg_cluster\n"
            f"local all {SUPERUSER} trust\n"
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n",
            encoding="utf-8",
        )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("include = 'strongroom.conf'\n")

    def _configure(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            "log_statement": "'all'",
            "log_destination": "'stderr'",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "lc_messages": "'C'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "30",
            "shared_buffers": "16MB",
        }
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "strongroom.conf").write_text(lines, encoding="utf-8")

    def _start(self) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = _free_port()
            self._configure(self.port)
            try:
                self._run("pg_ctl", "start", "--pgdata", str(self.data_dir), "--log", str(self.log_file), "--wait")
            except PostgresUnavailableError:
                if attempt == _START_ATTEMPTS or "could not bind" not in self.log_text():
                    raise PostgresUnavailableError(
                        "pg_ctl start failed: " + " | ".join(self.log_text().strip().splitlines()[-3:])
                    ) from None
                continue  # another process took the port between the probe and the bind
            self._running = True
            return

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory. Safe to call twice."""
        try:
            if self._running:
                self._running = False
                self._run("pg_ctl", "stop", "--pgdata", str(self.data_dir), "--mode", "fast", "--wait")
        finally:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
