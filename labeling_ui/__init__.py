"""The pygame labeling UI (installed as ``prefrl.labeling_ui``); built in its own issue."""

__all__: list[str] = []
