"""Opening the preference store by where it is: a file (the embedded SQLite store of one machine) or
a ``postgresql://`` URL (the server store of many)."""

from __future__ import annotations

from pathlib import Path

from .store import PreferenceStore
from .store_pg import PostgresStore

__all__ = ["open_store", "is_store_url"]


def is_store_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL store (``postgresql://...``) rather than a file."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path, env: str | None = None, create: bool = True, any_thread: bool = False):
    """The store at ``location``: a ``postgresql://user@host:port/db`` URL (a :class:`prefrl.store_pg.PostgresStore`,
    labelers on many machines) or a file path (the embedded SQLite :class:`PreferenceStore`)."""
    if is_store_url(location):
        return PostgresStore(str(location), env=env, create=create)
    return PreferenceStore(location, env=env, create=create, any_thread=any_thread)
