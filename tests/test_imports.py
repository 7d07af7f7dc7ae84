"""Data flows one way through the package: no module imports one above it (see ../shared/STYLE.md)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A module may import only modules listed before it.
LAYERS = [
    # foundations: no preference loop in them
    "errors", "progress", "losses", "clips", "schedule", "presets", "epic", "exploration", "stats", "metrics", "wrappers",
    "ratings", "envs", "algos", "reward_model", "store", "store_pg", "stores", "teachers", "reward_training", "diagnostics", "learned_reward",
    # the loop's stages, then the loop that calls them in order
    "queries", "reward_fn", "labeled_data", "feedback", "fitting", "loop",
    # one run
    "config", "run_dir", "build", "training",
    # what reads finished runs, the other paths, the command line
    "compare", "reports", "lm", "labeling_ui", "cli", "__main__",
]


def _module_files():
    for path in sorted((ROOT / "prefrl").rglob("*.py")):
        parts = path.relative_to(ROOT / "prefrl").with_suffix("").parts
        yield parts[0], path
    for top in ("envs", "labeling_ui"):
        for path in sorted((ROOT / top).glob("*.py")):
            yield top, path


def _prefrl_imports(module: str, path: Path) -> set[str]:
    """The top-level prefrl modules ``path`` imports (``from .x`` / ``from prefrl.x``, ``from ..x``)."""
    inside = module in ("envs", "labeling_ui", "lm")  # subpackages: ``..`` is prefrl, ``.`` themselves
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if node.module and node.module.split(".")[0] == "prefrl" and "." in node.module:
                found.add(node.module.split(".")[1])
            continue
        if inside and node.level == 1:
            continue  # within the subpackage
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found - {module}


def test_every_module_is_placed_in_a_layer():
    modules = {m for m, _ in _module_files()} - {"__init__"}
    assert modules <= set(LAYERS), f"place {sorted(modules - set(LAYERS))} in LAYERS"


def test_no_module_imports_one_above_it():
    rank = {m: i for i, m in enumerate(LAYERS)}
    upward = []
    for module, path in _module_files():
        if module == "__init__":
            continue  # the public API names (imported lazily)
        for dep in _prefrl_imports(module, path):
            if rank.get(dep, -1) >= rank[module]:
                upward.append(f"{path.relative_to(ROOT)} imports {dep}")
    assert not upward, upward


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "store.py"
    bad.write_text("from .training import train\nfrom prefrl.loop import PreferenceCallback\n")
    assert _prefrl_imports("store", bad) == {"training", "loop"}
