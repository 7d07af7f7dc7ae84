"""The pygame labeling UI (installed as ``prefrl.labeling_ui``): people say which of two clips is
better, and each answer goes straight into the run's store.

``prefrl label RUN_DIR`` opens it; :class:`LabelingSession` holds the logic (no pygame),
:class:`~prefrl.labeling_ui.app.LabelingApp` the window.
"""

from .session import ACTIONS, PREFERENCE, LabelingSession

__all__ = ["ACTIONS", "PREFERENCE", "LabelingSession"]
