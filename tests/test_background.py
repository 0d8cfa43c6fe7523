"""Samples written on background threads: the same tree as writes in the drawing loop, bounded
waiting, and a failed or interrupted run that leaves only whole samples and resumes."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from same_images import assert_same_up_to_rounding, photos

from fgaug.data.background import MAX_WRITE_THREADS, BackgroundWriter, write_threads
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
    """Stands in for a :class:`DatasetWriter`: each write waits until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[int] = []

    def write(self, group: Any, index: int, *rest: Any) -> dict[str, str]:
        self.release.wait(timeout=30)
        self.written.append(index)
        return {}


def test_at_most_twice_the_threads_wait_and_an_interrupt_drops_the_waiting_ones() -> None:
    held = HeldWrites()
    writes = BackgroundWriter(held, threads=1)  # type: ignore[arg-type]
    photo = np.zeros((2, 2, 3), np.uint8)
    writes.submit(None, 0, photo, {})  # type: ignore[arg-type]
    writes.submit(None, 1, photo, {})  # type: ignore[arg-type]
    third = threading.Thread(target=writes.submit, args=(None, 2, photo, {}))
    third.start()
    third.join(timeout=0.3)
    assert third.is_alive(), "a third write waited beside two on one thread"
    held.release.set()
    third.join(timeout=30)
    held.release.clear()
    with pytest.raises(KeyboardInterrupt), writes:
        writes.submit(None, 3, photo, {})  # type: ignore[arg-type]  # under way when the interrupt comes
        writes.submit(None, 4, photo, {})  # type: ignore[arg-type]  # waiting
        threading.Timer(0.3, held.release.set).start()
        raise KeyboardInterrupt
    assert held.written == [0, 1, 2, 3]


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
