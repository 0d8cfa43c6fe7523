"""What made an output tree: ``fgaug-run.json`` at its root, so that a rerun resumes only its own work.

``generate`` and ``layouts`` resume an interrupted run by skipping what is already written. That
is right only when nothing that shapes the output changed: a rerun with another model,
temperature or seed must not keep the first run's images and count them as done. So a run
records the settings that shape its output (written atomically before anything else) and
compares them with the record it finds:

* nothing of fgaug's output (at most the record of a run that wrote nothing): a new tree; the
  record is written;
* the same settings: the run resumes;
* other settings, or fgaug's output without a record: :class:`OutputConflictError` naming what
  differs, unless ``overwrite``: then fgaug's own outputs are removed first (its manifests, the
  record, and the city folders its naming marks as its own). Nothing else under the output root,
  and nothing inside the input, is ever removed.

A file that shapes the output (the model) is recorded by the SHA-256 of its content, so a copy
of it elsewhere is the same model and the same path holding a retrained one is not. A setting
missing from an older record (a newer fgaug added it) counts as its default; one without a
default (what the masks held, say) is not compared, as the older fgaug did not check it.

The record also says whether the run that wrote it got to its end (``"finished"``, written false
at the start and true at the end, and not compared), and at the end what it came to
(``"outcome"``: samples requested, samples in the tree, and whether the run accepted the
difference), so ``fgaug validate`` can tell an interrupted, incomplete or cut tree from a whole
one; a record from before these fields says nothing either way.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fgaug import __version__
from fgaug.data.cityscapes import Group
from fgaug.data.io import DataError, atomic_write_bytes, file_digest, file_digest_once, not_a_file
from fgaug.finite import to_json

RECORD_NAME = "fgaug-run.json"
LABEL_AND_PHOTO_ROOTS = ("leftImg8bit", "gtFine")


class OutputConflictError(DataError):
    """The output tree was made with other settings (the CLI's exit code 1, as for ``train``'s
    existing run folder)."""


@dataclass(frozen=True)
class RunRecord:
    """What shapes a run's output. ``settings``: the values that must be equal for a rerun to
    resume (JSON values; files by SHA-256); ``files``: the paths of those files, shown but not
    compared; ``defaults``: the value of a setting that an older record lacks; ``names``: how the
    user gives each setting (default ``--key-with-dashes``); ``unset``: how a user leaves out a
    setting whose value is None, where that is another option (``no --denoise``)."""

    command: str
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    unset: Mapping[str, str] = field(default_factory=dict)

    def to_json(self, finished: bool, outcome: RunOutcome | None = None) -> str:
        return to_json(
            {
                "command": self.command,
                "fgaug": __version__,
                "settings": self.settings,
                "files": self.files,
                "finished": finished,
                **({"outcome": asdict(outcome)} if outcome is not None else {}),
            }
        )


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run came to: the samples (or layouts) ``requested``, those ``in_tree`` at
    its end (written by it or an earlier run), and whether it ``accepted`` the ones missing
    (``generate --allow-failed``; exit 0)."""

    requested: int
    in_tree: int
    accepted: bool


@dataclass(frozen=True)
class OwnOutputs:
    """What a command writes under its output root: ``files`` (glob patterns at the root) and the
    city folders under ``leftImg8bit/<split>/`` and ``gtFine/<split>/`` whose names end with
    ``folder_suffix`` (a regular expression)."""

    files: tuple[str, ...]
    folder_suffix: str

    def folders(self, out_root: Path) -> list[Path]:
        pattern = re.compile(f".+{self.folder_suffix}")
        found = (path for kind in LABEL_AND_PHOTO_ROOTS for path in out_root.glob(f"{kind}/*/*"))
        return sorted(path for path in found if path.is_dir() and pattern.fullmatch(path.name))

    def root_files(self, out_root: Path) -> list[Path]:
        return sorted(path for pattern in self.files for path in out_root.glob(pattern) if path.is_file())


def file_identity(path: str | Path) -> str:
    """The SHA-256 of a file that shapes a run's output (a missing file is a one-line error)."""
    if not Path(path).is_file():
        raise not_a_file(path)
    return file_digest(path)


def masks_used(groups: Sequence[Group]) -> str:
    """Which masks a run used, in order, as one comparable value: their count and a digest of
    their keys and formats."""
    return counted_digest([f"{g.key}\0{g.mask_format}" for g in groups], "masks")


def other_sources(
    out_root: str | Path,
    records: Iterable[dict[str, Any]],
    groups: Sequence[Group],
    digests: dict[Path, str],
    content: Callable[[Group], str | None] | None = None,
) -> str | None:
    """Why a tree cannot be resumed with today's sources (None where it can): samples of a key were
    drawn from another mask than today's of that key, carry copies of other label files, or took
    their content from files changed since. Each manifest line records the SHA-256 of its mask
    (``mask_sha256``), of each source label file it copied (``labels_sha256``) and, for a layout
    given real content (``generate --content-from``), of that content (``content_sha256``, which
    ``content`` gives for today's files); lines from before any of these are not checked for it.
    So sources are known by key and content, not by the folder that holds them; as with other
    settings that differ, ``--overwrite`` replaces the tree's samples (:func:`check_output`). The
    files hashed are kept in ``digests`` (by path), for the writer's new lines."""
    by_key = {group.key: group for group in groups}
    for record in records:
        group = by_key.get(record["key"])
        if group is None:
            continue
        mask_recorded = record.get("mask_sha256")
        if mask_recorded is not None and mask_recorded != file_digest_once(group.mask, digests):
            return f"{out_root}: its samples of {group.key} were drawn from another mask than {group.mask}"
        content_recorded = record.get("content_sha256")
        if content is not None and content_recorded is not None and content(group) not in (None, content_recorded):
            return f"{out_root}: its sample of {group.key} took its content from files changed since (--content-from)"
        recorded = record.get("labels_sha256")
        if recorded is None:
            continue
        for suffix in sorted(set(recorded) | set(group.label_files)):
            source = group.label_files.get(suffix)
            if source is None or suffix not in recorded or recorded[suffix] != file_digest_once(source, digests):
                now = f"than {source}" if source is not None and suffix in recorded else "than the source has now"
                return f"{out_root}: its samples of {group.key} hold another {suffix.lstrip('_')} file {now}"
    return None


def masks_content(groups: Sequence[Group], digests: dict[Path, str] | None = None) -> str:
    """What the masks a run used hold, as one comparable value (:func:`files_content`)."""
    return files_content([group.mask for group in groups], digests)


def files_content(paths: Sequence[Path], digests: dict[Path, str] | None = None) -> str:
    """What the files hold, as one comparable value: a digest of each file's SHA-256 in order, so
    the same files moved elsewhere compare equal and a file changed in place does not. A run that
    compares many such sets keeps each file's SHA-256 in ``digests`` (:func:`file_digest_once`)."""
    joined = "\n".join(file_digest(path) if digests is None else file_digest_once(path, digests) for path in paths)
    return f"sha256 {hashlib.sha256(joined.encode()).hexdigest()[:12]}"


def counted_digest(keys: Sequence[str], noun: str) -> str:
    """``keys`` in order as one comparable value: ``"<count> <noun> (keys sha256 <12 hex>)"``."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    return f"{len(keys)} {noun} (keys sha256 {digest[:12]})"


def check_output(out_root: str | Path, record: RunRecord, own: OwnOutputs, overwrite: bool) -> bool:
    """Whether ``out_root`` must be cleared before this run writes: it holds fgaug's output made
    with other settings (or without a record) and ``overwrite`` is given. Without ``overwrite``
    such a tree is an :class:`OutputConflictError`. Reads only (every process may call it)."""
    out_root = Path(out_root)
    if not (own.root_files(out_root) or own.folders(out_root)):
        return False
    found = _stored_record(out_root)
    if found is None:
        problem = f"{out_root} holds fgaug output with no readable {RECORD_NAME} saying what made it"
    else:
        problem = _difference(out_root, found, record)
        if not problem:
            return False
    if not overwrite:
        raise OutputConflictError(f"{problem}; use --overwrite to replace it")
    return True


def take_output(out_root: str | Path, input_root: str | Path, record: RunRecord, own: OwnOutputs, clear: bool) -> None:
    """Make ``out_root`` this run's: remove fgaug's own outputs first when ``clear`` (never a path
    inside ``input_root``) and the temporary files a killed run left, then write the record
    atomically. One process calls it, and holds ``out_root`` from then on (:func:`hold_folder`)."""
    out_root = Path(out_root)
    hold_folder(out_root)
    if clear:
        keep = Path(input_root).resolve()
        removable = [path for path in [*own.root_files(out_root), *own.folders(out_root)] if not _inside(path, keep)]
        for path in sorted(removable, key=lambda p: p.is_dir()):  # manifests first: nothing counts as done
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        _remove_empty_folders(out_root)
    _remove_stale_temporaries(out_root, own, Path(input_root).resolve())
    _write_record(out_root, record, finished=False)


@contextmanager
def forgotten_if_unwritten(out_root: str | Path, own: OwnOutputs, active: bool = True) -> Iterator[None]:
    """Around a run that takes ``out_root`` (:func:`take_output`) and writes into it: when the run
    fails or is interrupted before any of ``own`` outputs is in place, the record it left is
    removed, with the folders left empty and ``out_root`` itself where the run created it. So a
    failed run that wrote nothing leaves nothing (it left an unfinished record for a CI job to
    trip over). ``active``: whether this process alone writes the output (not under torchrun,
    where the other processes may still be writing their first samples when one fails)."""
    out_root = Path(out_root)
    existed, record_before = out_root.exists(), _stamp(out_root / RECORD_NAME)
    try:
        yield
    except BaseException:
        record = out_root / RECORD_NAME
        written = _stamp(record) not in (None, record_before)  # a record this run wrote, no one else's
        if active and written and not (own.root_files(out_root) or own.folders(out_root)):
            record.unlink()
            _remove_empty_folders(out_root)
            if not existed and not any(out_root.iterdir()):
                out_root.rmdir()
        raise
    finally:
        release_folder(out_root)


_HELD: dict[Path, int] = {}
"""The output folders this process holds (:func:`hold_folder`), each by an open descriptor of it."""


def hold_folder(out_root: Path) -> None:
    """Lock ``out_root`` for this process's run: two runs writing one tree at once (two CI jobs
    given one ``--out``) mixed their samples under one record, and ``validate`` passed it. The lock
    is an advisory ``flock`` on the folder itself, so nothing is written for it and it goes with
    the process, however that ends; :func:`finish_output` releases it at the run's end, and
    :func:`forgotten_if_unwritten` around a run that fails. A
    second run finding the folder held is an :class:`OutputConflictError`; this process may take
    the same folder again; a file system that cannot lock leaves runs unguarded."""
    key = out_root.resolve()
    if key in _HELD:
        return
    out_root.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out_root, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise OutputConflictError(
            f"{out_root}: another fgaug run is writing into it now; let that run finish, or write elsewhere"
        ) from None
    except OSError:  # no locks on this file system
        pass
    _HELD[key] = descriptor


def release_folder(out_root: Path) -> None:
    descriptor = _HELD.pop(out_root.resolve(), None)
    if descriptor is not None:
        os.close(descriptor)


def _stamp(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is now: an atomic rewrite gives it a new inode."""
    if not path.is_file():
        return None
    status = path.stat()
    return status.st_ino, status.st_mtime_ns


def finish_output(out_root: str | Path, record: RunRecord, outcome: RunOutcome) -> None:
    """Record that the run of ``record`` got to its end, and its ``outcome``, and release
    ``out_root`` (:func:`hold_folder`). One process calls it."""
    _write_record(Path(out_root), record, finished=True, outcome=outcome)
    release_folder(Path(out_root))


def _write_record(out_root: Path, record: RunRecord, finished: bool, outcome: RunOutcome | None = None) -> None:
    atomic_write_bytes(out_root / RECORD_NAME, (record.to_json(finished, outcome) + "\n").encode())


def recorded_outcome(out_root: str | Path) -> RunOutcome | None:
    """The outcome the finished run of ``out_root`` recorded; None without one (no record, an
    unfinished run, a record from before ``"outcome"``, or one edited out of shape)."""
    stored = _stored_record(Path(out_root))
    outcome = stored.get("outcome") if stored is not None else None
    if not isinstance(outcome, dict):
        return None
    try:
        return RunOutcome(int(outcome["requested"]), int(outcome["in_tree"]), bool(outcome["accepted"]))
    except (TypeError, KeyError, ValueError):
        return None


def unfinished_run(out_root: str | Path) -> str | None:
    """The command whose run wrote ``out_root`` and did not get to its end (interrupted, or still
    running); None for a finished run, no record, or a record from before ``"finished"``."""
    stored = _stored_record(Path(out_root))
    if stored is None or stored.get("finished", True) is not False:
        return None
    return str(stored.get("command", "fgaug"))


def recorded_run(out_root: str | Path) -> bool:
    """Whether ``out_root`` holds a readable run record."""
    return _stored_record(Path(out_root)) is not None


def _stored_record(out_root: Path) -> dict[str, Any] | None:
    try:
        stored = json.loads((out_root / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return stored if isinstance(stored, dict) and isinstance(stored.get("settings"), dict) else None


def _difference(out_root: Path, stored: dict[str, Any], record: RunRecord) -> str:
    """A sentence naming what differs between the stored record and this run's ('' if nothing)."""
    if stored.get("command") != record.command:
        return f"{out_root} was made by fgaug {stored.get('command')}; this run is fgaug {record.command}"
    current = json.loads(to_json(record.settings))
    files = stored.get("files")
    old_files = files if isinstance(files, dict) else {}
    before, now = [], []
    for key, value in current.items():
        if key not in stored["settings"] and key not in record.defaults:
            continue
        old = stored["settings"].get(key, json.loads(to_json(record.defaults.get(key))))
        if old != value:
            name = record.names.get(key, f"--{key.replace('_', '-')}")
            before.append(_setting(name, old, old_files.get(key), record.unset.get(key)))
            now.append(_setting(name, value, record.files.get(key), record.unset.get(key)))
    if not before:
        return ""
    return f"{out_root} was made with {', '.join(before)}; this run has {', '.join(now)}"


def _setting(name: str, value: Any, path: str | None, unset: str | None) -> str:
    """A setting as a user gives it: ``--temp 0.8``, or ``unset`` (``no --denoise``) for a value
    of None where the record says how a user leaves it out."""
    return unset if value is None and unset is not None else f"{name} {_shown(value, path)}"


def _shown(value: Any, path: str | None) -> str:
    if path is not None and isinstance(value, str):
        return f"{path} (sha256 {value[:12]})"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(_shown(item, None) for item in value)
    return str(value)


def clear_folder(folder: Path, keep: Sequence[Path]) -> None:
    """Remove what ``folder`` holds (through a symbolic link, what its target holds; the link
    stays), except an entry that is or holds one of ``keep``, the run's inputs: a command's own
    folder of outputs, replaced, where a user may have put an input all the same."""
    target = folder.resolve()
    if not target.is_dir():
        return
    for entry in sorted(target.iterdir()):
        if any(_inside(path, entry.resolve()) for path in keep):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _inside(path: Path, folder: Path) -> bool:
    resolved = path.resolve()
    return resolved == folder or resolved.is_relative_to(folder)


def _remove_stale_temporaries(out_root: Path, own: OwnOutputs, keep: Path) -> None:
    """The temporary files (``.NAME.XXXX.part``, :func:`~fgaug.data.io.temporary_beside`) that a
    killed run left beside its outputs: under ``leftImg8bit/`` and ``gtFine/``, and beside the
    command's own files at the root; none inside ``keep`` (the input). Their names are random, so
    no later write replaces them."""
    stale = [path for kind in LABEL_AND_PHOTO_ROOTS for path in (out_root / kind).rglob(".*.part")]
    stale += [path for pattern in (*own.files, RECORD_NAME) for path in out_root.glob(f".{pattern}.*.part")]
    for path in stale:
        if path.is_file() and not path.is_symlink() and not _inside(path, keep):
            path.unlink()


def _remove_empty_folders(out_root: Path) -> None:
    """``leftImg8bit/<split>`` and ``gtFine/<split>`` folders (and then their roots) left empty."""
    for kind in LABEL_AND_PHOTO_ROOTS:
        for folder in [*sorted((out_root / kind).glob("*")), out_root / kind]:
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
