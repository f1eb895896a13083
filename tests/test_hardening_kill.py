"""Killed runs and overlapping runs, with real `aggregator build` processes.

A build killed with SIGKILL at any moment must leave every feed holding either its old
bytes or the new build's bytes, never a mix; the next build must finish the job and
clean up. The state store must survive a kill. Two builds must never interleave.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from aggregator.lock import lock_path
from aggregator.output.publishing import WRITE_THREADS

from .factories import (
    all_feed_problems,
    classify_after_kill,
    tree_bytes,
    write_config,
    write_record_set,
)

KILLS = 20
RECORDS = 600
TOPICS = 100  # 2 * (1 + 100 + 13) = 228 feed files, each written with an fsync


def build_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "aggregator", "build", "--config", str(config), "-q", *extra]


def run_build(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        build_command(config, *extra), capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def old_and_new(tmp_path: Path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A config whose records have changed since the output was built: the old output,
    and the bytes the new build must produce (built once, elsewhere)."""
    records = tmp_path / "records"
    write_record_set(records, RECORDS, TOPICS)
    config = write_config(tmp_path, [records])
    assert run_build(config).returncode == 0
    old = tree_bytes(tmp_path / "out")
    shutil.rmtree(records)
    write_record_set(records, RECORDS, TOPICS, suffix=" (updated)")
    assert run_build(config, "--output", str(tmp_path / "expected")).returncode == 0
    new = tree_bytes(tmp_path / "expected")
    assert set(old) == set(new)
    assert all(old[name] != new[name] for name in old if name.endswith("rss.xml"))
    return config, old, new


def restore(output: Path, files: dict[str, bytes]) -> None:
    """Make `output` hold exactly `files` (rewriting only what differs)."""
    current = tree_bytes(output) if output.exists() else {}
    for name in set(current) - set(files):
        (output / name).unlink()
    for name, data in files.items():
        if current.get(name) != data:
            (output / name).parent.mkdir(parents=True, exist_ok=True)
            (output / name).write_bytes(data)


def test_builds_killed_at_random_moments_never_leave_a_partial_feed(
    old_and_new: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path
) -> None:
    config, old, new = old_and_new
    output = tmp_path / "out"
    started = time.monotonic()
    assert run_build(config, "--output", str(tmp_path / "timing")).returncode == 0
    duration = time.monotonic() - started  # a whole run, writes included
    rng = random.Random(6)
    phases: list[str] = []
    cleaned_up = False
    for attempt in range(KILLS):
        restore(output, old)
        process = subprocess.Popen(
            build_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.0, duration))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        phase, temps, broken = classify_after_kill(output, old, new)
        phases.append(phase)
        assert broken == [], f"kill {attempt} ({phase}): {broken[:5]}"
        # Files are written by WRITE_THREADS threads at once: one temp file each at most.
        assert len(temps) <= WRITE_THREADS, f"kill {attempt}: too many temp files: {temps}"
        if attempt % 10 == 9 or (temps and not cleaned_up):  # the next run finishes the job
            result = run_build(config)
            assert result.returncode == 0, result.stderr
            assert tree_bytes(output) == new  # every feed new, no temp file left
            cleaned_up = cleaned_up or bool(temps)
    print(f"\nbuild {duration:.2f} s; kill phases: {', '.join(phases)}")
    assert wait_until_gone(config) == []  # no worker outlives its killed build


def build_processes(config: Path) -> list[int]:
    """Processes (builds and their workers) running with `config` on their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if str(config).encode() in command:
                found.append(int(entry.name))
    return found


def wait_until_gone(config: Path, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := build_processes(config)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_workers_of_a_killed_build_exit(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record_set(records, 3000, TOPICS)  # parsing takes long enough to be caught at it
    config = write_config(tmp_path, [records])
    process = subprocess.Popen(
        build_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(build_processes(config)) < 3 and process.poll() is None:
        assert time.monotonic() < deadline, "the build never started its workers"
        time.sleep(0.01)
    workers = [pid for pid in build_processes(config) if pid != process.pid]
    assert workers, "the build finished before its workers were seen"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert wait_until_gone(config) == []


def test_state_store_survives_kills(tmp_path: Path) -> None:
    """A writer killed mid-transaction leaves the store whole: every batch all or nothing."""
    db = tmp_path / "state.db"
    writer = (
        "import sys\n"
        "from pathlib import Path\n"
        "from aggregator.state.sqlite import SqliteStore\n"
        "store = SqliteStore.open(Path(sys.argv[1]))\n"
        "batch = int(sys.argv[2])\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    with store.transaction():\n"
        "        for key in range(50):\n"
        "            store.put('test', f'{batch}:{key}', b'x' * 2000)\n"
        "        store.put('test', 'last', str(batch).encode())\n"
        "    batch += 1\n"
    )
    rng = random.Random(7)
    batch = 0
    for _attempt in range(KILLS):
        process = subprocess.Popen([sys.executable, "-c", writer, str(db), str(batch)],
                                   stdout=subprocess.PIPE)  # fmt: skip
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.2))  # killed at a random point of its writes
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        connection = sqlite3.connect(db)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = [key for (key,) in connection.execute("SELECT key FROM entries")]
        connection.close()
        batches: dict[str, int] = {}
        for key in keys:
            if key != "last":
                batches[key.split(":")[0]] = batches.get(key.split(":")[0], 0) + 1
        assert all(count == 50 for count in batches.values()), batches
        batch += 1000  # the next writer's batches are new keys


def test_a_build_waits_for_the_lock_then_exits_3_touching_nothing(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record_set(records, 5, 2)
    config = write_config(tmp_path, [records], "\n[build]\nlock_timeout = 0.5\n")
    output = tmp_path / "out"
    output.mkdir()
    (output / "rss.xml").write_bytes(b"<rss>previous</rss>")
    stale = output / ".atom.xml.x1y2.aggregator-tmp"  # the other build's file in flight
    stale.write_bytes(b"half-written")
    before = tree_bytes(output)
    lock = FileLock(str(lock_path(tmp_path / ".aggregator" / "state.db")))
    with lock.acquire(timeout=0):  # another build is running
        result = run_build(config)
        assert result.returncode == 3
        assert "another build is running" in result.stderr
        assert "waited 0.5 s ([build] lock_timeout), nothing was done" in result.stderr
        assert tree_bytes(output) == before
    result = run_build(config)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert all_feed_problems(output) == {}


def test_two_builds_started_together_never_interleave(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record_set(records, 400, 40)
    config = write_config(tmp_path, [records], "\n[build]\nlock_timeout = 300\n")
    assert run_build(config, "--output", str(tmp_path / "expected")).returncode == 0
    expected = tree_bytes(tmp_path / "expected")
    command = [*build_command(config)[:-1], "-v"]  # -v: one "wrote PATH" line per file
    first, second = (
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    )
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert tree_bytes(tmp_path / "out") == expected
    # Serialised by the lock: one build wrote every file, the other found nothing to change.
    writers = sorted(out.count("\nwrote ") + out.startswith("wrote ") for out, _ in outputs)
    assert writers == [0, len(expected)]


def test_second_build_exits_3_while_the_first_is_running(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record_set(records, 3 * RECORDS, 2 * TOPICS)  # a first build of a few seconds
    slow = write_config(tmp_path, [records], "\n[build]\nlock_timeout = 300\n")
    hasty = tmp_path / "hasty.toml"
    hasty.write_text(slow.read_text().replace("lock_timeout = 300", "lock_timeout = 0"))
    first = subprocess.Popen(build_command(slow), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = FileLock(str(lock_path(tmp_path / ".aggregator" / "state.db")))
    while first.poll() is None:  # wait until the first build holds the lock
        try:
            lock.acquire(timeout=0)
        except Timeout:
            break
        lock.release()
        time.sleep(0.01)
    second = run_build(hasty)
    first_running = first.poll() is None
    first.communicate(timeout=300)
    if not first_running:
        pytest.skip("the first build finished before the second one asked for the lock")
    assert second.returncode == 3, second.stderr
    assert "another build is running" in second.stderr
    assert first.returncode == 0
    assert all_feed_problems(tmp_path / "out") == {}


def test_kill_helpers_detect_a_partial_feed(tmp_path: Path) -> None:
    """The checker itself: a truncated or foreign feed is caught."""
    output = tmp_path / "out"
    old = {"rss.xml": b"<rss>old</rss>", "atom.xml": b"<feed>old</feed>"}
    new = {"rss.xml": b"<rss>new</rss>", "atom.xml": b"<feed>new</feed>"}
    restore_target = {"rss.xml": b"<rss>ne", "atom.xml": b"<feed>old</feed>"}
    output.mkdir()
    restore(output, restore_target)
    phase, temps, broken = classify_after_kill(output, old, new)
    assert broken and broken[0].startswith("rss.xml: not XML")
    restore(output, {"atom.xml": new["atom.xml"], ".rss.xml.a.aggregator-tmp": b"x"})
    phase, temps, broken = classify_after_kill(output, old, new)
    assert (phase, temps, broken) == ("during", [".rss.xml.a.aggregator-tmp"], ["rss.xml: missing"])
    assert os.path.exists(output / "atom.xml")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_ctrl_c_stops_the_build_and_its_workers_with_one_line(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record_set(records, 3000, TOPICS)
    config = write_config(tmp_path, [records])
    process = subprocess.Popen(
        build_command(config), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(build_processes(config)) < 3 and process.poll() is None:
        assert time.monotonic() < deadline, "the build never started its workers"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.splitlines() == [
        "aggregator: interrupted; every file written so far is whole, the rest was not written"
    ]
    assert wait_until_gone(config) == []


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_a_worker_killed_mid_build_fails_the_build_cleanly(tmp_path: Path) -> None:
    """Say an out-of-memory killer takes a worker: one line, exit 4, nothing half-written,
    and the next run makes the whole site."""
    records = tmp_path / "records"
    write_record_set(records, 3000, TOPICS)
    config = write_config(tmp_path, [records])
    process = subprocess.Popen(build_command(config), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(workers := [p for p in build_processes(config) if p != process.pid]) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "no workers seen"
        time.sleep(0.01)
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 4, stderr
    [line] = stderr.splitlines()
    assert line.startswith("aggregator: build failed: one of the ")
    assert "worker processes ended abruptly" in line
    assert wait_until_gone(config) == []
    assert run_build(config).returncode == 0
    assert all_feed_problems(tmp_path / "out") == {}
