"""A scripted labeler that goes through the UI's own code path: it reads the pair on screen, decides
as the oracle would (the higher true return is better), and presses the key; the app's event
handler does the rest. For tests, demos and checking a human-feedback setup end to end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from prefrl.errors import StoreError  # noqa: E402
from prefrl.stores import is_store_url, open_store  # noqa: E402
from prefrl.teachers import OracleTeacher  # noqa: E402

from .app import LabelingApp  # noqa: E402
from .session import LabelingSession  # noqa: E402

__all__ = ["ScriptedLabeler"]

_KEY = {1.0: pygame.K_LEFT, 0.0: pygame.K_RIGHT, 0.5: pygame.K_DOWN}


class ScriptedLabeler(threading.Thread):
    """Answer a store's queries from a background thread, one key press per query.

    Args:
        store_path: the store to label, a file or a ``postgresql://`` URL (it may not exist yet: the
            thread waits for it).
        labeler: the name stored with each label.
        delay: seconds between answers (a person takes a few).
    """

    def __init__(self, store_path: str | Path, labeler: str = "script", delay: float = 0.0):
        super().__init__(daemon=True, name=f"labeler-{labeler}")
        self.store_path = store_path if is_store_url(store_path) else Path(store_path)
        self.labeler = labeler
        self.delay = delay
        self.answered = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        try:
            self._label()
        except BaseException as exc:  # surfaced by the caller through .error
            self.error = exc

    def _label(self) -> None:
        store = None
        while store is None:  # wait for the trainer to create the store
            if self._stop_event.is_set():
                return
            try:
                store = open_store(self.store_path, create=False)
            except StoreError:
                time.sleep(0.05)
        oracle = OracleTeacher()
        try:
            app = LabelingApp(LabelingSession(store, self.labeler, store.env))
            while not self._stop_event.is_set():
                session = app.session
                session.poll()
                if session.current is None:
                    time.sleep(0.05)
                    continue
                if session.ranking:  # the number keys of the clips best first (the last one goes last)
                    (order,) = oracle.rank([list(session.clips)])
                    for position in order[:-1]:
                        app.handle_event(pygame.event.Event(pygame.KEYDOWN, key=getattr(pygame, f"K_{position + 1}")))
                else:
                    (preference,) = oracle([session.clips])
                    app.handle_event(pygame.event.Event(pygame.KEYDOWN, key=_KEY[preference]))
                self.answered += 1
                if self.delay:
                    time.sleep(self.delay)
            app.session.quit()
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m prefrl.labeling_ui.scripted STORE LABELER [DELAY]``: one scripted labeler in a process
    of its own (as a `prefrl label` window on another machine would be), answering STORE (a file
    or a ``postgresql://`` URL) until SIGTERM or SIGINT; prints how many it answered."""
    import signal
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m prefrl.labeling_ui.scripted STORE LABELER [DELAY]", file=sys.stderr)
        return 2
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    labeler = ScriptedLabeler(args[0], labeler=args[1], delay=float(args[2]) if len(args) == 3 else 0.0)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    labeler.start()
    while not stop.is_set() and labeler.is_alive():
        stop.wait(0.2)
    labeler.stop()
    print(f"{args[1]}: {labeler.answered} answers", flush=True)
    if labeler.error is not None:
        print(f"{args[1]}: {type(labeler.error).__name__}: {labeler.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
