"""Every bad input and fault we know of, tried on every command as a new user and a hostile one would.

Each case runs ``prefrl ...`` as a user would, in a fresh copy of a small finished run (a learned
cartpole run, made once at the start), and the table says: the exit code, whether a Python traceback
showed, stderr's first line and its number of lines, and whether the run's store still holds what it
held (its clips, queries and labels, compared row by row). A case passes when the command refused
with one line and a non-zero exit and the store is unchanged (or, where noted, did the right thing).

    python experiments/bad_inputs.py                 # every case, a table at the end
    python experiments/bad_inputs.py --only export   # the cases whose name holds "export"

Faults of the file system (a full disk, a read-only one) are made with small tmpfs mounts, which need
root; without it those cases say "skipped". ``prefrl label`` cases run with SDL's dummy video driver and
are stopped with SIGTERM after a few seconds, as a closed terminal would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFRL = [sys.executable, "-m", "prefrl.cli"]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONUNBUFFERED": "1"}


@dataclass
class Case:
    """One bad input. ``args`` may name ``{run}`` (a fresh copy of the finished run, after ``setup``),
    ``{tmp}`` (an empty scratch directory) and ``{data}`` (a scratch file ``setup`` can write).
    ``expect``: ``refuse`` (one line, non-zero exit) or ``label`` (the labeling window: stopped by
    SIGTERM, nothing left claimed)."""

    name: str
    args: str
    setup: Callable[[Path, Path], None] | None = None
    expect: str = "refuse"
    special: Callable[[Path, Path], dict] | None = None


# ---- what a case does to its copy of the run before the command -------------------------------------

def _sql(statement: str):
    def setup(run: Path, data: Path) -> None:
        db = sqlite3.connect(run / "store.sqlite")
        db.execute(statement)
        db.commit()
        db.close()
    return setup


def _damage_clip(run: Path, data: Path) -> None:
    """Damage the observations of a clip that a waiting query shows (a pending query is made if
    none waits), as a bad disk sector would: the blob no longer inflates."""
    db = sqlite3.connect(run / "store.sqlite")
    row = db.execute("SELECT left_id FROM comparisons WHERE status = 'pending' LIMIT 1").fetchone()
    if row is None:
        a, b = db.execute("SELECT id FROM clips ORDER BY id DESC LIMIT 2").fetchall()
        db.execute("INSERT INTO comparisons (left_id, right_id, status, created, source) "
                   "VALUES (?, ?, 'pending', ?, 'human')", (a[0], b[0], time.time()))
        row = a
    blob = db.execute("SELECT obs FROM clips WHERE id = ?", row).fetchone()[0]
    db.execute("UPDATE clips SET obs = ? WHERE id = ?", (blob[:8] + bytes(len(blob) - 8), row[0]))
    db.commit()
    db.close()


def _unfinish(run: Path, data: Path) -> None:
    (run / "summary.json").unlink()


def _write(name: str, content: bytes | str, unfinish: bool = False):
    def setup(run: Path, data: Path) -> None:
        if unfinish:
            _unfinish(run, data)
        path = run / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return setup


def _remove(name: str, unfinish: bool = False):
    def setup(run: Path, data: Path) -> None:
        if unfinish:
            _unfinish(run, data)
        (run / name).unlink()
    return setup


def _truncate(name: str, unfinish: bool = False):
    def setup(run: Path, data: Path) -> None:
        if unfinish:
            _unfinish(run, data)
        path = run / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return setup


def _config_field(key: str, value, unfinish: bool = False):
    def setup(run: Path, data: Path) -> None:
        if unfinish:
            _unfinish(run, data)
        config = json.loads((run / "config.json").read_text())
        config[key] = value
        (run / "config.json").write_text(json.dumps(config))
    return setup


def _pickle_model(run: Path, data: Path) -> None:
    """A reward_model.pt that holds a pickled object (which could run code when unpickled)."""
    import torch

    torch.save({"weights": [1, 2, 3], "note": object.__new__(Case)}, run / "reward_model.pt")


def _data(content: bytes | str):
    def setup(run: Path, data: Path) -> None:
        data.write_bytes(content.encode() if isinstance(content, str) else content)
    return setup


# ---- cases that need more than one command ----------------------------------------------------------

def _two_trainers(run: Path, tmp: Path) -> dict:
    """A trainer is started on a new directory; a second one on the same directory while it runs."""
    target = tmp / "shared"
    first = subprocess.Popen([*PREFRL, "train", "cartpole", "--labels", "20", "--steps", "60000", "--seed", "0",
                              "--no-progress", "--run-dir", str(target)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (target / "config.json").exists():
            time.sleep(0.2)
        second = subprocess.run([*PREFRL, "train", "cartpole", "--labels", "20", "--steps", "2048", "--seed", "1",
                                 "--no-progress", "--run-dir", str(target)], env=ENV, capture_output=True, text=True,
                                timeout=600)
        seed = json.loads((target / "config.json").read_text()).get("seed")
    finally:
        first.kill()
        first.wait()
    return {"rc": second.returncode, "stderr": second.stderr,
            "store": "kept" if seed == 0 else f"config.json now says seed {seed}"}


@contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(tempfile.mkdtemp())
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    ok = mounted.returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)])
    probe.rmdir()
    return ok


def _fill(directory: Path) -> None:
    """Fill the file system under ``directory`` to the last byte."""
    f = open(directory / "filler", "wb", buffering=0)
    for size in (65536, 4096, 1):
        try:
            while True:
                f.write(b"\0" * size)
        except OSError:
            pass
    try:
        f.close()
    except OSError:
        pass


def _export_disk_full(run: Path, tmp: Path) -> dict:
    """``export`` once into a small file system, then again once it is full: the first files stay."""
    with _tmpfs(tmp / "small", "256k") as out:
        subprocess.run([*PREFRL, "export", str(run), "--out", str(out)], env=ENV, capture_output=True, check=True)
        before = (out / "comparisons.jsonl").read_bytes()
        _fill(out)
        result = subprocess.run([*PREFRL, "export", str(run), "--out", str(out)], env=ENV, capture_output=True,
                                text=True, timeout=300)
        after = (out / "comparisons.jsonl").read_bytes()
    return {"rc": result.returncode, "stderr": result.stderr,
            "note": "comparisons.jsonl kept" if after == before else f"comparisons.jsonl now {len(after)} bytes"}


def _train_disk_full(run: Path, tmp: Path) -> dict:
    """``train`` into a file system that fills part-way: one line, and the store still opens."""
    with _tmpfs(tmp / "small", "700k") as small:
        result = subprocess.run([*PREFRL, "train", "cartpole", "--labels", "40", "--steps", "40000", "--no-progress",
                                 "--run-dir", str(small / "run")], env=ENV, capture_output=True, text=True, timeout=600)
        ok = _store_rows(small / "run" / "store.sqlite") is not None
    return {"rc": result.returncode, "stderr": result.stderr, "note": "store opens" if ok else "store damaged"}


def _read_only(command: list[str], copy_run: bool = True):
    def special(run: Path, tmp: Path) -> dict:
        with _tmpfs(tmp / "ro", "64m") as mount:
            target = mount / "run"
            shutil.copytree(run, target)
            before = _store_rows(target / "store.sqlite")
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
            start = time.monotonic()
            result = subprocess.run([*PREFRL, *[a.replace("{run}", str(target)) for a in command]], env=ENV,
                                    capture_output=True, text=True, timeout=600)
            seconds = time.monotonic() - start
            after = _store_rows(target / "store.sqlite")
        return {"rc": result.returncode, "stderr": result.stderr,
                "store": "kept" if before == after else "changed", "note": f"{seconds:.0f} s"}
    return special


# ---- the cases --------------------------------------------------------------------------------------

CASES = [
    # train
    Case("train: two trainers on one --run-dir at once", "", special=_two_trainers),
    Case("train --reward true into a finished learned run",
         "train cartpole --reward true --steps 2048 --run-dir {run}"),
    Case("train into a finished learned run", "train cartpole --labels 20 --steps 2048 --run-dir {run}"),
    Case("train an env with Tuple observations (Blackjack-v1)", "train Blackjack-v1 --steps 2048 --run-dir {tmp}/bj"),
    Case("train an env id that does not exist", "train NoSuchEnv-v0 --run-dir {tmp}/x"),
    Case("train --labels 1e8 on 4096 steps", "train cartpole --labels 100000000 --steps 4096 --run-dir {tmp}/x"),
    Case("train --labels -3", "train cartpole --labels -3 --run-dir {tmp}/x"),
    Case("train --steps 0", "train cartpole --steps 0 --run-dir {tmp}/x"),
    Case("train --seed -1", "train cartpole --seed -1 --steps 2048 --run-dir {tmp}/x"),
    Case("train --seed 2**40", "train cartpole --seed 1099511627776 --steps 2048 --run-dir {tmp}/x"),
    Case("train --pessimism nan", "train cartpole --pessimism nan --steps 2048 --run-dir {tmp}/x"),
    Case("train --pessimism -1", "train cartpole --pessimism -1 --run-dir {tmp}/x"),
    Case("train --max-minutes inf", "train cartpole --max-minutes inf --steps 2048 --run-dir {tmp}/x"),
    Case("train --reward-dropout nan", "train breakout --reward-dropout nan --steps 2048 --run-dir {tmp}/x"),
    Case("train --initial-labels above the budget", "train cartpole --labels 10 --initial-labels 50 --run-dir {tmp}/x"),
    Case("train --rank-size 1", "train cartpole --rank-size 1 --run-dir {tmp}/x"),
    Case("train --rank-size 1000", "train cartpole --rank-size 1000 --labels 20 --steps 2048 --run-dir {tmp}/x"),
    Case("train --device tpu", "train cartpole --device tpu --run-dir {tmp}/x"),
    Case("train --query nonsense", "train cartpole --query nonsense --run-dir {tmp}/x"),
    Case("train --teacher noisy:beta=-1", "train cartpole --teacher noisy:beta=-1 --run-dir {tmp}/x"),
    Case("train --set n_envs=0", "train cartpole --set n_envs=0 --steps 2048 --run-dir {tmp}/x"),
    Case("train --set clip_length=-5", "train cartpole --set clip_length=-5 --steps 2048 --run-dir {tmp}/x"),
    Case("train --set reward_epochs=nan", "train cartpole --set reward_epochs=NaN --steps 2048 --run-dir {tmp}/x"),
    Case("train --set reward_std=0", "train cartpole --set reward_std=0 --steps 2048 --run-dir {tmp}/x"),
    Case("train --set no_such_field=1", "train cartpole --set no_such_field=1 --run-dir {tmp}/x"),
    Case("train --run-dir is a file", "train cartpole --labels 20 --steps 2048 --run-dir {data}",
         setup=_data("a file")),
    # train --resume
    Case("resume with other flags (ignored before)", "train --resume {run} --labels 5 --seed 3", setup=_unfinish),
    Case("resume, config.json missing", "train --resume {run}", setup=_remove("config.json", unfinish=True)),
    Case("resume, config.json a list", "train --resume {run}", setup=_write("config.json", "[1, 2]", unfinish=True)),
    Case("resume, config.json labels a string", "train --resume {run}",
         setup=_config_field("labels", "many", unfinish=True)),
    Case("resume, config.json env unknown", "train --resume {run}",
         setup=_config_field("env", "NoSuchEnv-v0", unfinish=True)),
    Case("resume, store table dropped", "train --resume {run}",
         setup=lambda r, d: (_unfinish(r, d), _sql("DROP TABLE comparisons")(r, d))),
    Case("resume, damaged clip blob", "train --resume {run}", setup=lambda r, d: (_unfinish(r, d), _damage_clip(r, d))),
    Case("resume, reward_model.pt truncated", "train --resume {run}",
         setup=_truncate("reward_model.pt", unfinish=True)),
    Case("resume, reward_model.json not JSON", "train --resume {run}",
         setup=_write("reward_model.json", "{not json", unfinish=True)),
    Case("resume, reward_model.pt a pickle", "train --resume {run}",
         setup=lambda r, d: (_unfinish(r, d), _pickle_model(r, d))),
    Case("resume a finished run", "train --resume {run}"),
    Case("resume a directory that is no run", "train --resume {tmp}"),
    # compare
    Case("compare, reward_model.pt truncated", "compare {run} --episodes 1", setup=_truncate("reward_model.pt")),
    Case("compare, reward_model.pt missing", "compare {run} --episodes 1", setup=_remove("reward_model.pt")),
    Case("compare, reward_model.pt a pickle", "compare {run} --episodes 1", setup=_pickle_model),
    Case("compare, reward_model.json missing", "compare {run} --episodes 1", setup=_remove("reward_model.json")),
    Case("compare, reward_model.json foreign", "compare {run} --episodes 1",
         setup=_write("reward_model.json", '{"layers": 7}')),
    Case("compare, config.json missing", "compare {run} --episodes 1", setup=_remove("config.json")),
    Case("compare, config.json a list", "compare {run} --episodes 1", setup=_write("config.json", "[]")),
    Case("compare, config.json env a number", "compare {run} --episodes 1", setup=_config_field("env", 7)),
    Case("compare, policy.zip truncated", "compare {run} --episodes 1", setup=_truncate("policy.zip")),
    Case("compare --video -5", "compare {run} --episodes 1 --video -5"),
    Case("compare --episodes 0", "compare {run} --episodes 0"),
    Case("compare --baseline that does not exist", "compare {run} --episodes 1 --baseline {tmp}/nothing"),
    Case("compare --baseline a file", "compare {run} --episodes 1 --baseline {data}",
         setup=_data("x")),
    Case("compare on a read-only run directory", "", special=_read_only(["compare", "{run}", "--episodes", "1"])),
    # label
    # (on a run still training, so that the window makes no new pairs of its own once it passes the damaged one)
    Case("label, damaged clip blob on the waiting pair", "label {run} --labeler a",
         setup=lambda r, d: (_unfinish(r, d), _damage_clip(r, d)), expect="label"),
    Case("label, comparisons table dropped", "label {run} --labeler a", setup=_sql("DROP TABLE comparisons")),
    Case("label, clips table dropped", "label {run} --labeler a", setup=_sql("DROP TABLE clips")),
    Case("label --rank-size 9", "label {run} --rank-size 9"),
    Case("label a directory with no store", "label {tmp}"),
    Case("label on a read-only run directory", "", special=_read_only(["label", "{run}", "--labeler", "a"])),
    # ratings
    Case("ratings, comparisons table dropped", "ratings {run}", setup=_sql("DROP TABLE comparisons")),
    Case("ratings, RUN_DIR a file", "ratings {data}", setup=_data("x")),
    Case("ratings, no labels", "ratings {run}", setup=_sql("DELETE FROM comparisons")),
    Case("ratings on a read-only run directory", "", special=_read_only(["ratings", "{run}"])),
    # export
    Case("export, --out a file", "export {run} --out {data}", setup=_data("x")),
    Case("export, RUN_DIR a file", "export {data}", setup=_data("x")),
    Case("export, clips table dropped", "export {run} --out {tmp}/e", setup=_sql("DROP TABLE clips")),
    Case("export onto a full disk", "", special=_export_disk_full),
    Case("train onto a disk that fills", "", special=_train_disk_full),
    # lm
    Case("lm --pair-data missing", "lm --method dpo --pair-data {tmp}/none.jsonl --run-dir {tmp}/lm"),
    Case("lm --pair-data not UTF-8", "lm --method dpo --pair-data {data} --run-dir {tmp}/lm",
         setup=_data(b'{"prompt": "a", "chosen": "b", "rejected": "\xff\xfe"}\n')),
    Case("lm --pair-data not JSON on line 2", "lm --method dpo --pair-data {data} --run-dir {tmp}/lm",
         setup=_data('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n')),
    Case("lm --pair-data row without chosen", "lm --method dpo --pair-data {data} --run-dir {tmp}/lm",
         setup=_data('{"prompt": "a", "rejected": "c"}\n')),
    Case("lm --pair-data empty", "lm --method dpo --pair-data {data} --run-dir {tmp}/lm", setup=_data("")),
    Case("lm --sft-data a JSON list", "lm --sft-data {data} --run-dir {tmp}/lm", setup=_data("[1, 2, 3]\n")),
    Case("lm --kto-data label a string", "lm --method kto --kto-data {data} --run-dir {tmp}/lm",
         setup=_data('{"prompt": "a", "completion": "b", "label": "yes"}\n')),
    Case("lm --method nonsense", "lm --method nonsense --run-dir {tmp}/lm"),
    Case("lm --labels 0", "lm --labels 0 --run-dir {tmp}/lm"),
    Case("lm --beta -1", "lm --method dpo --beta -1 --run-dir {tmp}/lm"),
    Case("lm --epochs 0", "lm --method dpo --epochs 0 --run-dir {tmp}/lm"),
    Case("lm --kl-coef nan", "lm --kl-coef nan --run-dir {tmp}/lm"),
    Case("lm --ppo-iterations -1", "lm --ppo-iterations -1 --run-dir {tmp}/lm"),
    Case("lm --rank-size 1", "lm --rank-size 1 --run-dir {tmp}/lm"),
    Case("lm into a learned run's directory", "lm --method dpo --run-dir {run}"),
]


# ---- running and judging ----------------------------------------------------------------------------

def _store_rows(path: Path) -> str | None:
    """A digest of everything a store holds, row by row (None if it cannot be read)."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        digest = hashlib.sha256()
        for line in db.iterdump():
            digest.update(line.encode())
        db.close()
        return digest.hexdigest()
    except sqlite3.Error:
        return hashlib.sha256(path.read_bytes()).hexdigest()


def _claimed(path: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        n = db.execute("SELECT COUNT(*) FROM comparisons WHERE claimed_by IS NOT NULL").fetchone()[0]
        db.close()
        return n
    except sqlite3.Error:
        return 0


def _run(case: Case, base: Path, scratch: Path) -> dict:
    run, tmp, data = scratch / "run", scratch / "tmp", scratch / "data"
    shutil.copytree(base, run)
    (run / ".lock").unlink(missing_ok=True)
    tmp.mkdir()
    if case.special is not None:
        return case.special(run, tmp)
    if case.setup is not None:
        case.setup(run, data)
    before = _store_rows(run / "store.sqlite")
    argv = [a.format(run=run, tmp=tmp, data=data) for a in case.args.split()]
    if case.expect == "label":
        proc = subprocess.Popen([*PREFRL, *argv], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        result = {"rc": proc.returncode, "stderr": err, "note": f"{_claimed(run / 'store.sqlite')} left claimed"}
    else:
        try:
            done = subprocess.run([*PREFRL, *argv], env=ENV, capture_output=True, text=True, timeout=300)
            result = {"rc": done.returncode, "stderr": done.stderr}
        except subprocess.TimeoutExpired as exc:
            result = {"rc": "ran on (300 s)", "stderr": (exc.stderr or b"").decode(errors="replace")}
    after = _store_rows(run / "store.sqlite")
    result["store"] = "kept" if before == after else "changed"
    return result


def _judge(case: Case, result: dict) -> tuple[bool, str]:
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    traceback = any(line.startswith("Traceback") for line in lines)
    first = lines[0][:150] if lines else "(nothing on stderr)"
    store_ok = result.get("store", "kept") == "kept"
    if case.expect == "label":
        ok = not traceback and store_ok and result.get("note", "").startswith("0 ") and result["rc"] == 128 + 15
    else:
        ok = isinstance(result["rc"], int) and result["rc"] != 0 and len(lines) == 1 and not traceback and store_ok
        if "note" in result and ("damaged" in result["note"] or "now" in result["note"]):
            ok = False
    return ok, first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None, help="run the cases whose name holds this text")
    p.add_argument("--out", default="runs/bad_inputs", help="where the table (bad_inputs.md, .json) goes")
    args = p.parse_args()
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    mount = _can_mount()
    work = Path(tempfile.mkdtemp(prefix="prefrl-bad-"))
    base = work / "base"
    print("making a small finished learned run to break ...", flush=True)
    subprocess.run([*PREFRL, "train", "cartpole", "--labels", "12", "--steps", "2048", "--no-progress",
                    "--run-dir", str(base)], env=ENV, check=True, capture_output=True)
    rows = []
    for k, case in enumerate(cases):
        needs_mount = case.special in (_export_disk_full, _train_disk_full) or (
            case.special is not None and case.special.__qualname__.startswith("_read_only"))
        if needs_mount and not mount:
            rows.append({"case": case.name, "ok": None, "rc": "skipped", "first": "needs root to mount a tmpfs"})
            continue
        scratch = work / f"case{k}"
        scratch.mkdir()
        start = time.monotonic()
        try:
            result = _run(case, base, scratch)
        except Exception as exc:  # the harness's own failure (a mount refused, say): said, and the next case goes on
            result = {"rc": "harness error", "stderr": f"{type(exc).__name__}: {exc}"}
        ok, first = _judge(case, result)
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        rows.append({"case": case.name, "ok": ok, "rc": result["rc"],
                     "traceback": any(line.startswith("Traceback") for line in lines), "lines": len(lines),
                     "first": first, "store": result.get("store", "n/a"), "note": result.get("note", ""),
                     "seconds": round(time.monotonic() - start, 1)})
        print(f"{'ok  ' if ok else 'FAIL'} {case.name}: rc {result['rc']}, {len(lines)} lines: {first}", flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    header = ("| case | exit | traceback | stderr lines | first line | store | note | pass |\n"
              "|---|---|---|---|---|---|---|---|")
    table = [header] + [
        f"| {r['case']} | {r['rc']} | {'yes' if r.get('traceback') else 'no'} | {r.get('lines', '')} | "
        f"{r['first'].replace('|', '/')} | {r.get('store', '')} | {r.get('note', '')} | "
        f"{'—' if r['ok'] is None else ('yes' if r['ok'] else '**no**')} |" for r in rows]
    passed = sum(1 for r in rows if r["ok"])
    tracebacks = sum(1 for r in rows if r.get("traceback"))
    zero_exits = sum(1 for r in rows if r["rc"] == 0)
    changed = sum(1 for r in rows if r.get("store") == "changed")
    summary = (f"{passed} of {len(rows)} cases pass; {tracebacks} tracebacks, {zero_exits} exits 0, "
               f"{changed} stores changed, {sum(1 for r in rows if r['ok'] is None)} skipped")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad_inputs.md").write_text("\n".join(table) + "\n\n" + summary + "\n")
    (out / "bad_inputs.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(table))
    print(summary)


if __name__ == "__main__":
    main()
