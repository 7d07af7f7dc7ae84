"""prefrl.build.keep_freed_memory: glibc keeps freed memory for the next tensor, where it applies, and
a run records whether it did."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from prefrl.build import keep_freed_memory


def _glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


def _untuned_env() -> dict[str, str]:
    """This process's environment without any malloc tuning of the user's (which turns the setting off)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}


needs_glibc = pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's (Linux)")

# A child process: make, write and free a 64 MB tensor (over glibc's 32 MB mmap threshold) again and
# again, and count the page faults of the last ten times. Kept, freed blocks are reused once the heap
# has holes the size of one (a few rounds in: torch's aligned requests do not fit an equal hole).
_FAULTS = """
import resource, sys
import torch
from prefrl.build import keep_freed_memory
if sys.argv[1] == "kept" and not keep_freed_memory():
    raise SystemExit("keep_freed_memory did not apply")
for _ in range(20):
    torch.ones(16 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.parametrize("env", [{"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, {"MALLOC_ARENA_MAX": "2"},
                                 {"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=512:glibc.malloc.mmap_max=9"}])
def test_a_users_own_malloc_tuning_is_left_alone(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def no_libc(*args, **kwargs):
        raise AssertionError("mallopt was reached although the user tunes malloc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert keep_freed_memory() is False


@needs_glibc
def test_a_big_tensor_freed_and_made_again_reuses_its_pages_when_kept():
    env = _untuned_env()
    faults = {setting: int(subprocess.run([sys.executable, "-c", _FAULTS, setting], env=env, check=True,
                                          capture_output=True, text=True).stdout.split()[-1])
              for setting in ("system", "kept")}
    pages = 64 * 2**20 // 4096  # of one tensor
    assert faults["system"] > 5 * pages, faults  # each tensor unmapped when freed: its pages fault in again
    assert faults["kept"] < 0.1 * pages, faults


@needs_glibc
@pytest.mark.parametrize("tunables, kept", [(None, True), ("glibc.malloc.tcache_count=7", False)])
def test_a_run_records_whether_it_kept_freed_memory(tmp_path, tunables, kept):
    env = _untuned_env()
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "prefrl", "train", "cartpole", "--reward", "true", "--steps", "256",
                    "--run-dir", str(run), "--no-progress"], env=env, check=True, capture_output=True, text=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kept_freed_memory"] is kept
    assert summary["peak_rss_mb"] > 50  # torch and SB3 alone take more than this
