"""A throwaway PostgreSQL cluster on 127.0.0.1, for the PostgreSQL store's tests and drills.

``tests/test_store_pg.py`` starts one per test module (:class:`Server`). Run as a script, it starts
one and keeps it until Ctrl-C or SIGTERM, then stops it and removes its directory:

    python experiments/pg_server.py [--stores N]

prints the owner's URL of a new empty store (a schema of its own) on one line, N lines for N stores;
give it to ``prefrl ... --store`` or ``experiments/drills.py ... --store``. The passwords are this
module's constants: the cluster is a throwaway one on the loopback interface, gone when it stops.

Needs Debian's ``postgresql`` (binaries under /usr/lib/postgresql/<version>/bin) or ``initdb`` and
``pg_ctl`` on PATH, and psycopg 3. Run as root, the server runs as the ``postgres`` user (it refuses
root).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

__all__ = ["Server", "ADMIN_PASSWORD", "OWNER", "OWNER_PASSWORD", "DATABASE"]

ADMIN_PASSWORD = "admin-pw"
OWNER, OWNER_PASSWORD = "prefrl_owner", "owner-pw"
DATABASE = "stores"


def _binaries() -> Path | None:
    """The newest PostgreSQL server's bin directory (Debian's layout first, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL cluster in a temp directory on 127.0.0.1, run as an unprivileged user (the server
    refuses root); password log-in over TCP only, as labelers on other machines would connect."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="prefrl-pg-"))  # not under pytest's 0700 root-only dirs
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout
        self.version = int(version.split()[2].split(".")[0])  # "postgres (PostgreSQL) 15.18 (Debian ...)"
        (self.root / "pw").write_text(ADMIN_PASSWORD + "\n")
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = pwd.getpwnam("nobody")
            for p in (self.root, self.root / "pw"):
                os.chown(p, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", user.pw_name, "--"]
        try:
            self._pg("initdb", "-D", str(self.data), "-U", "admin", f"--pwfile={self.root / 'pw'}", "-E", "UTF8",
                     "--no-locale", "--no-sync", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256")
            self.start()
            with self.admin() as db:
                db.execute(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}'")
                db.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
        except BaseException:
            self.remove()
            raise
        self._stores = 0

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], cwd=self.root, capture_output=True,
                              text=True, timeout=120)
        if done.returncode:
            log = self.root / "log"
            raise RuntimeError(f"{tool} failed: {done.stderr[-2000:]}{log.read_text()[-2000:] if log.exists() else ''}")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=on -c shared_buffers=16MB -c max_connections=60")
        if self.version >= 14:  # after a crash, one syncfs rather than an fsync of each file (seconds each start)
            options += " -c recovery_init_sync_method=syncfs"
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        """Stop at once, as a crash would: no checkpoint, the next start replays the WAL."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, schema: str | None, user: str = OWNER, password: str = OWNER_PASSWORD) -> str:
        """A store's URL: the test database with ``schema`` first on the search path (None: the
        ``postgres`` database)."""
        where = f"{DATABASE}?options=-csearch_path%3D{schema}" if schema else "postgres"
        return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{where}"

    def admin(self, schema: str | None = None):
        """A superuser's connection (see :meth:`url`)."""
        return psycopg.connect(self.url(schema, "admin", ADMIN_PASSWORD), autocommit=True)

    def new_store(self) -> str:
        """A new empty schema owned by the store's owner role; its name. A schema, not a database
        each: a crash's recovery fsyncs every file in the cluster, about 2 s a database here."""
        self._stores += 1
        name = f"store{self._stores}"
        with self.admin("public") as db:
            db.execute(f"CREATE SCHEMA {name} AUTHORIZATION {OWNER}")
        return name

    def remove(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", type=int, default=1, help="new empty stores (schemas) to make: one URL a line")
    args = p.parse_args(argv)
    bindir = _binaries()
    if bindir is None:
        print("pg_server.py: no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql",
              file=sys.stderr)
        return 2
    # SIGTERM ends the wait below as Ctrl-C does, so the cluster is stopped and its directory removed
    signal.signal(signal.SIGTERM, _interrupt)
    server = None
    try:
        server = Server(bindir)
        for _ in range(args.stores):
            print(server.url(server.new_store()), flush=True)
        print(f"PostgreSQL {server.version} on 127.0.0.1:{server.port} in {server.root}: Ctrl-C or SIGTERM "
              "stops it and removes the directory", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut the clean-up short
            server.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
