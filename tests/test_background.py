"""Samples written on background threads: the same tree as writes in the drawing loop, bounded
waiting, and a failed or interrupted run that leaves only whole samples and resumes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from same_images import assert_same_up_to_rounding, photos

from fgaug.data.background import MAX_WRITE_THREADS, BackgroundWrites, write_threads
from fgaug.data.writer import DatasetWriter
from fgaug.generate.engine import generate
from fgaug.generate.options import GenerateOptions


def run(masks: Path, out: Path, checkpoint: Path, threads: int) -> None:
    generate(
        GenerateOptions(
            masks=str(masks), out=str(out), model=str(checkpoint), n=3, device="cpu", seed=5, write_threads=threads
        )
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_threads_write_the_tree_of_the_drawing_loop_byte_for_byte(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = small_tree / "gtFine" / "val"
    run(masks, tmp_path / "loop", test_checkpoint, threads=0)
    run(masks, tmp_path / "threads", test_checkpoint, threads=3)
    loop, threaded = tree_bytes(tmp_path / "loop"), tree_bytes(tmp_path / "threads")
    assert len([name for name in loop if name.endswith("_leftImg8bit.png")]) == 12
    assert threaded == loop


def samples(out: Path) -> list[tuple[str, int]]:
    """The (key, sample) of every manifest line, in order."""
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return [(record["key"], record["sample"]) for record in map(json.loads, lines)]


class FailingWrites:
    """A :class:`DatasetWriter` whose write of one sample fails, as a full disk would."""

    def __init__(self, failing: tuple[str, int]) -> None:
        self.failing = failing
        self.write = self.wrap(DatasetWriter.write)

    def wrap(self, write: Any) -> Any:
        failing = self.failing

        def failing_write(writer: DatasetWriter, group: Any, index: int, *rest: Any) -> dict[str, str]:
            if (group.key, index) == failing:
                raise OSError(28, "No space left on device")
            return write(writer, group, index, *rest)

        return failing_write


def test_a_failed_write_stops_the_run_with_whole_samples_only_and_a_rerun_completes(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    masks = small_tree / "gtFine" / "val"
    run(masks, tmp_path / "reference", test_checkpoint, threads=0)
    first_key = json.loads((tmp_path / "reference" / "manifest.jsonl").read_text().splitlines()[0])["key"]
    monkeypatch.setattr(DatasetWriter, "write", FailingWrites((first_key, 1)).write)
    with pytest.raises(OSError, match="No space left on device"):
        run(masks, tmp_path / "out", test_checkpoint, threads=2)
    out = tmp_path / "out"
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert (first_key, 1) not in samples(out) and len(lines) < 12
    assert all((out / path).is_file() for line in lines for path in line["outputs"].values())
    assert not list(out.rglob("*.part"))
    monkeypatch.undo()
    run(masks, out, test_checkpoint, threads=2)
    assert_same_up_to_rounding(photos(out), photos(tmp_path / "reference"))  # the rerun's batches differ
    assert samples(out) == samples(tmp_path / "reference")
    labels, reference_labels = tree_bytes(out / "gtFine"), tree_bytes(tmp_path / "reference" / "gtFine")
    assert labels == reference_labels


class HeldWrites:
    """Writes that each wait until ``release`` is set, and record themselves and their follow-ups."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[int] = []
        self.written: list[int] = []
        self.followed: list[int] = []

    def write(self, index: int) -> None:
        self.started.append(index)
        self.release.wait(timeout=30)
        self.written.append(index)

    def submit(self, writes: BackgroundWrites, index: int) -> None:
        writes.submit(self.write, index, then=lambda: self.followed.append(index))


def test_at_most_twice_the_threads_wait_and_an_interrupt_drops_the_waiting_ones() -> None:
    held = HeldWrites()
    writes = BackgroundWrites(threads=1)
    held.submit(writes, 0)
    held.submit(writes, 1)
    third = threading.Thread(target=held.submit, args=(writes, 2))
    third.start()
    third.join(timeout=0.3)
    assert third.is_alive(), "a third write waited beside two on one thread"
    held.release.set()
    third.join(timeout=30)
    while len(held.written) < 3:
        time.sleep(0.01)
    held.release.clear()
    with pytest.raises(KeyboardInterrupt), writes:
        held.submit(writes, 3)  # under way when the interrupt comes
        held.submit(writes, 4)  # waiting
        while 3 not in held.started:  # the thread may take a while to pick it up on a loaded machine
            time.sleep(0.01)
        threading.Timer(0.3, held.release.set).start()
        raise KeyboardInterrupt
    assert held.written == [0, 1, 2, 3] and held.followed == [0, 1, 2], "no follow-up runs after the interrupt"


def test_follow_ups_run_in_submission_order_after_their_writes() -> None:
    done: list[int] = []
    followed: list[tuple[int, bool]] = []
    with BackgroundWrites(threads=3) as writes:
        for index in range(12):
            pause = 0.02 * ((7 * index) % 5)  # later writes often finish first

            def write(index: int = index, pause: float = pause) -> None:
                time.sleep(pause)
                done.append(index)

            writes.submit(write, then=lambda index=index: followed.append((index, index in done)))
    assert followed == [(index, True) for index in range(12)]


def test_the_default_threads_are_the_processs_cpu_threads_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert write_threads() == 2
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert write_threads() == MAX_WRITE_THREADS


def test_a_rerun_clears_the_temporary_files_of_a_killed_run_and_validate_reads_part_manifests(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A killed run's ``.NAME.XXXX.part`` files have random names no later write replaces, so
    validate failed the tree after every rerun; and a torchrun tree interrupted before its
    manifests were merged was "not an fgaug output tree"."""
    from fgaug.data.validate import validate_tree

    masks, out = small_tree / "gtFine" / "val", tmp_path / "out"
    run(masks, out, test_checkpoint, threads=2)
    city = next((out / "gtFine").rglob("*_labelIds.png")).parent
    left = [city / ".x_gtFine_labelIds.png.k3j9.part", out / ".manifest.jsonl.a1b2.part"]
    for path in left:
        path.write_bytes(b"half")
    assert f"{left[0]}: a temporary file of an interrupted write" in validate_tree(out).problems
    run(masks, out, test_checkpoint, threads=2)
    assert not any(path.exists() for path in left) and validate_tree(out).problems == []
    (out / "manifest.jsonl").rename(out / "manifest.rank0.jsonl")
    assert validate_tree(out).samples == 12


def test_layouts_on_threads_write_the_tree_of_the_loop_byte_for_byte(small_tree: Path, tmp_path: Path) -> None:
    from fgaug.api import LayoutOptions, LayoutRunOptions, layouts

    layout = LayoutOptions(n=2, paste=2, photos=True)
    for threads in (0, 3):
        made = layouts(
            LayoutRunOptions(
                masks=str(small_tree),
                out=str(tmp_path / f"t{threads}"),
                splits=["train"],
                layout=layout,
                write_threads=threads,
            )
        )
        assert made.written == 24
    assert tree_bytes(tmp_path / "t3") == tree_bytes(tmp_path / "t0")
