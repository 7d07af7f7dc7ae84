"""The pygame window: two clips side by side, looping in step; keys answer which is better.

The loop is tick, events, update, draw, flip. :meth:`LabelingApp.handle_event` only changes state
(through :class:`~prefrl.labeling_ui.session.LabelingSession`); :meth:`LabelingApp.draw` only reads
it. Tests post key events with ``SDL_VIDEODRIVER=dummy`` and no screen.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# The window's X11 class (SDL names it after the script otherwise: "__main__.py"), read when SDL's
# video starts: before any clip is drawn, since gymnasium's renderers call pygame.init().
os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "prefrl")
import numpy as np  # noqa: E402
import pygame  # noqa: E402

from prefrl.errors import PrefrlError  # noqa: E402

from .session import MAX_RANK, LabelingSession  # noqa: E402

__all__ = ["KEYS", "LabelingApp", "check_display"]

KEYS = {
    pygame.K_LEFT: "left", pygame.K_a: "left",
    pygame.K_RIGHT: "right", pygame.K_d: "right",
    pygame.K_DOWN: "equal", pygame.K_s: "equal", pygame.K_EQUALS: "equal",
    pygame.K_SPACE: "skip",
    pygame.K_u: "undo", pygame.K_BACKSPACE: "undo",
    pygame.K_p: "pause",
    pygame.K_ESCAPE: "quit", pygame.K_q: "quit",
    # rankings: the number of the best clip among those not yet placed, then the next best
    **{getattr(pygame, f"K_{k}"): f"pick{k}" for k in range(1, MAX_RANK + 1)},
    **{getattr(pygame, f"K_KP{k}"): f"pick{k}" for k in range(1, MAX_RANK + 1)},
}
# Keys of the window alone (playback and help); they never touch the store.
VIEW_KEYS = {
    pygame.K_LEFTBRACKET: "slower", pygame.K_RIGHTBRACKET: "faster", pygame.K_r: "replay",
    pygame.K_h: "help", pygame.K_F1: "help",
}
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # playback speed, times the env's own frame rate
LEGEND = ("Left/A: left is better    Right/D: right is better    Down/S/=: equal",
          "Space: can't tell    U/Backspace: undo    P: pause    R: replay",
          "[ and ]: slower, faster    H: help    Esc/Q: quit")
RANK_LEGEND = ("1-{k}: the best clip of those not placed yet, then the next best",
               "Space: can't tell    U/Backspace: undo    P: pause    R: replay",
               "[ and ]: slower, faster    H: help    Esc/Q: quit")
# The help screen: lines of text, and rows of two "key, what it does" columns.
HELP = ("How to label",
        "",
        "The clips play side by side, looping. Say which does better at the task as you",
        "understand it: the agent never sees the game's score; it learns from your answers.",
        "",
        (("Left or A", "left is better"), ("P", "pause")),
        (("Right or D", "right is better"), ("R", "replay from the start")),
        (("Down, S or =", "equally good"), ("[ and ]", "slower, faster")),
        (("Space", "can't tell"), ("H or F1", "this screen")),
        (("U or Backspace", "undo"), ("Esc or Q", "quit")),
        (("1, 2, 3, 4", "ranking: best first"), ("", "")),
        "",
        "Each answer is saved the moment you give it. Press any key to start.")
MARGIN, HEADER, FOOTER = 16, 84, 82
# SDL's drivers that draw where nobody sees: chosen on purpose (tests), or a sign there is no screen
HEADLESS = ("dummy", "offscreen")
NO_DISPLAY = ("no display to open the labeling window on ({where}; {why}): run `prefrl label` in a desktop "
              "session, over `ssh -X`, or with DISPLAY set to a running X server")
BG, FG, DIM, ACCENT = (24, 24, 28), (235, 235, 235), (150, 150, 160), (90, 170, 255)


def check_display() -> None:
    """Raise :class:`PrefrlError` if no window could be seen: on X11/Wayland systems with neither
    DISPLAY nor WAYLAND_DISPLAY set (SDL would quietly draw off screen). Call it before anything
    draws a clip: gymnasium's renderers start SDL's video, whose probes print to stderr. With only
    DISPLAY set, SDL is pointed at X11 alone, so a dead X server is one clear error, not a probe of
    every driver."""
    if os.environ.get("SDL_VIDEODRIVER") or not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise PrefrlError(NO_DISPLAY.format(where="DISPLAY is not set", why="no X11 or Wayland session"))
    if not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["SDL_VIDEODRIVER"] = "x11"


class LabelingApp:
    """The labeling window over one :class:`LabelingSession`.

    Args:
        session: the labeler's session on a store.
        clip_fps: steps per second the clips play at (the env's frame rate).
        display_fps: frames per second the window is drawn at.
        clip_width: each clip is scaled to about this many pixels wide (Atari's 84 becomes ×4).
        help: start with the screen that explains the keys (any key closes it; `prefrl label`
            shows it to a labeler with no answers in the store yet).
    """

    def __init__(self, session: LabelingSession, clip_fps: float = 30.0, display_fps: int = 60,
                 clip_width: int = 336, help: bool = False):
        self.session = session
        self.clip_fps = clip_fps
        self.display_fps = display_fps
        self.clip_width = clip_width
        self.step = 0.0  # playback position in clip steps
        self._surfaces: tuple[list[pygame.Surface], list[pygame.Surface]] | None = None
        self._shown: int | None = None  # comparison id the surfaces were made for
        self._font: pygame.font.Font | None = None
        self._last_poll = 0.0
        self.frames_drawn = 0
        self.stopped_by: int | None = None  # the signal that ended the session, if one did
        self.speed = 1.0  # one of SPEEDS
        self.help = help

    # events: state only
    def handle_event(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.session.apply("quit")
        elif event.type == pygame.KEYDOWN and self.help:
            self.help = False  # any key closes the help screen, and does nothing else
            self.session.restart_clock()  # reading the help is not time spent on the pair
        elif event.type == pygame.KEYDOWN and event.key in VIEW_KEYS:
            self.view(VIEW_KEYS[event.key])
        elif event.type == pygame.KEYDOWN and event.key in KEYS:
            before = self.session.key
            self.session.apply(KEYS[event.key])
            if self.session.key != before:
                self.step = 0.0  # a new query starts from its first step

    def view(self, action: str) -> None:
        """Playback and help: ``slower``, ``faster``, ``replay`` or ``help``."""
        k = SPEEDS.index(self.speed)
        if action == "slower":
            self.speed = SPEEDS[max(0, k - 1)]
        elif action == "faster":
            self.speed = SPEEDS[min(len(SPEEDS) - 1, k + 1)]
        elif action == "replay":
            self.step = 0.0
        elif action == "help":
            self.help = True

    def update(self, dt: float) -> None:
        """Advance playback by ``dt`` seconds (not while paused); look for new queries once a second
        while none is on screen."""
        if not self.session.paused and not self.help:
            self.step += dt * self.clip_fps * self.speed
        now = time.monotonic()
        if self.session.current is None and now - self._last_poll > 1.0:
            self._last_poll = now
            self.session.poll()

    # drawing: reads state only
    def _scaled(self) -> tuple[list[pygame.Surface], ...] | None:
        if self.session.current is None or self.session.frames is None:
            return None
        if self._shown != self.session.key:
            self._surfaces = tuple(self._to_surfaces(f) for f in self.session.frames)
            self._shown = self.session.key
        return self._surfaces

    def each_width(self) -> int:
        """Pixels across each clip: ``clip_width`` for a pair; K clips share about two widths."""
        n = len(self.session.frames) if self.session.frames is not None else 2
        return self.clip_width if n == 2 else max(2 * self.clip_width // n, 240)

    def _to_surfaces(self, frames: np.ndarray) -> list[pygame.Surface]:
        h, w = frames.shape[1:3]
        scale = self.each_width() / w
        size = (round(w * scale), round(h * scale))
        return [pygame.transform.scale(pygame.surfarray.make_surface(np.ascontiguousarray(f.swapaxes(0, 1))), size)
                for f in frames]

    def size(self) -> tuple[int, int]:
        frames = self.session.frames
        n = len(frames) if frames is not None else 2
        h, w = (frames[0].shape[1:3] if frames is not None else (3, 4))
        each = self.each_width()
        clip_h = round(h * each / w)
        height = max(HEADER + clip_h + FOOTER, HEADER - 20 + 22 * len(HELP)) + MARGIN  # the help covers the legend
        return (n + 1) * MARGIN + n * each, height

    def waiting_line(self) -> str:
        """How many answers are asked for: by a live trainer, or of a finished run's clips."""
        n = self.session.waiting()
        if self.session.new_pairs:
            what = "pairs" if self.session.rank_size == 2 else f"groups of {self.session.rank_size}"
            return f"{n} queries waiting; the run is finished, so new {what} of its clips are drawn after them"
        return f"the trainer is waiting for {n} answer{'s' if n != 1 else ''}"

    def draw(self, surface: pygame.Surface) -> None:
        s = self.session
        font = self._font or pygame.font.Font(None, 24)
        self._font = font
        surface.fill(BG)
        status = (f"{s.labeler}   answered this session: {s.labeled}   {s.labels_per_minute():.1f} a minute   "
                  f"speed {self.speed:g}x" + ("   PAUSED" if s.paused else ""))
        surface.blit(font.render(status, True, FG), (MARGIN, 10))
        surface.blit(font.render(self.waiting_line(), True, DIM), (MARGIN, 34))
        clips = self._scaled()
        if self.help:
            for k, line in enumerate(HELP):
                y = HEADER - 20 + 22 * k
                if isinstance(line, str):
                    surface.blit(font.render(line, True, FG if k else ACCENT), (MARGIN, y))
                    continue
                for column, (key, text) in enumerate(line):  # two "key  what it does" columns
                    x = MARGIN + column * 345
                    surface.blit(font.render(key, True, ACCENT), (x, y))
                    surface.blit(font.render(text, True, FG), (x + 135, y))
        elif clips is None:
            message = "No queries waiting. Waiting for the trainer to ask (Esc/Q quits)."
            surface.blit(font.render(message, True, DIM), (MARGIN, HEADER))
        else:
            names = [f"{k + 1}" + (f"   placed {s.order.index(k) + 1}." if k in s.order else "")
                     for k in range(len(clips))] if s.ranking else ["left (Left/A)", "right (Right/D)"]
            each = self.each_width()
            for k, (frames, name) in enumerate(zip(clips, names)):
                x = MARGIN + k * (each + MARGIN)
                placed = s.ranking and k in s.order
                surface.blit(font.render(name, True, FG if placed else ACCENT), (x, HEADER - 22))
                frame = frames[int(self.step) % len(frames)]
                surface.blit(frame, (x, HEADER))
                if placed:  # dim a clip once it has its place
                    veil = pygame.Surface(frame.get_size(), pygame.SRCALPHA)
                    veil.fill((0, 0, 0, 140))
                    surface.blit(veil, (x, HEADER))
        legend = [] if self.help else [line.format(k=len(clips)) for line in RANK_LEGEND] if s.ranking and clips else LEGEND
        for k, line in enumerate(legend):
            surface.blit(font.render(line, True, DIM), (MARGIN, surface.get_height() - FOOTER + 4 + 22 * k))
        self.frames_drawn += 1

    # the loop
    def stop(self, signum: int) -> None:
        """Ask the loop to end at its next frame, as Q does (a signal handler calls this: nothing
        is written here, so no answer is cut off half-way)."""
        self.stopped_by = signum

    def run(self, max_frames: int | None = None) -> None:
        """Open the window and label until the labeler quits, the window is closed, :meth:`stop` is
        called, or ``max_frames`` frames were drawn. The pair on screen is released however it ends.

        Raises:
            PrefrlError: no display can be opened (SDL would fall back to drawing off screen, where
                nobody sees the window); nothing is claimed then.
        """
        try:
            screen = self._open()
            clock = pygame.time.Clock()
            while not self.session.done and self.stopped_by is None and (
                    max_frames is None or self.frames_drawn < max_frames):
                dt = clock.tick(self.display_fps) / 1000.0
                for event in pygame.event.get():
                    self.handle_event(event)
                self.update(dt)
                if self.session.done:
                    break
                if screen.get_size() != self.size():
                    screen = pygame.display.set_mode(self.size())
                self.draw(screen)
                pygame.display.flip()
        finally:
            self.session.quit()
            pygame.display.quit()

    def _open(self) -> pygame.Surface:
        check_display()
        try:
            pygame.display.init()
            driver = pygame.display.get_driver()
            if driver in HEADLESS and os.environ.get("SDL_VIDEODRIVER") != driver:
                raise pygame.error(f"SDL found no screen and fell back to its {driver!r} driver")
            pygame.font.init()
            screen = pygame.display.set_mode(self.size())
        except pygame.error as exc:
            where = f"DISPLAY={os.environ['DISPLAY']}" if os.environ.get("DISPLAY") else "DISPLAY is not set"
            raise PrefrlError(NO_DISPLAY.format(where=where, why=exc)) from None
        pygame.display.set_caption(f"prefrl labeling: {self.session.store.path}")
        return screen
