"""Sharing the CPU's cores between the fgaug processes that run at once on one machine.

torch gives every process one thread per core. Two training runs at once on two cores then keep
four threads busy on two cores, and each stalls at every one of a step's many small parallel
regions until a descheduled thread runs again: each took 6.0x as long as alone, where one thread
each cost 1.0x (``benchmarks/concurrency.py``; ``benchmarks/RESULTS.md``, "Two processes at once").

So every fgaug command that computes joins a registry for as long as it works: a private folder
holding one file per live process (``$FGAUG_PROCESS_DIR``, else
``<tmp>/fgaug-processes-<uid>-<PID namespace>``). Whenever a :class:`~fgaug.progress.Progress`
starts or advances, at most once a second, it counts the live processes there and takes its share
of a budget of B threads, torch's count when it joined: with n processes ordered by their start,
the k-th (from 0) takes

    threads(k) = max(1, B // n + [k < B mod n]),

and takes its B threads back when the others have finished. A process that ended without cleaning
up (killed, or a zombie) is told by ``/proc``: no such PID, or a PID reused by a process that
started later; its file is removed.

Left alone: a process whose ``OMP_NUM_THREADS`` is set (the user chose its threads), any with
``FGAUG_OMP=leave`` or ``FGAUG_SHARE_CORES=no``, and every process where there is no ``/proc``
(not Linux). The thread count changes how float sums round, so a photo may differ by one 8-bit
level with the load (``docs/output.md``, "Reproducibility"). Kernels that ``--compile`` built on
the CPU keep the thread count they were built with.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REFRESH_SECONDS = 1.0
"""The least time between two counts of the registry."""


PROC = Path("/proc")
"""Linux's process table: where a registered process is checked for life (no sharing without it)."""


def registry_folder() -> Path:
    """Where the fgaug processes of this user and PID namespace register: ``$FGAUG_PROCESS_DIR``,
    else a folder in the system's temporary directory. A PID means a process only within its
    namespace, so containers that share a temporary folder do not share a registry."""
    named = os.environ.get("FGAUG_PROCESS_DIR")
    if named:
        return Path(named)
    try:
        namespace = "".join(filter(str.isdigit, os.readlink(PROC / "self" / "ns" / "pid")))
    except OSError:
        namespace = "0"
    return Path(tempfile.gettempdir()) / f"fgaug-processes-{os.getuid()}-{namespace}"


def sharing_blocker(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why this process does not share the cores (the user set its thread count or turned sharing
    off, or there is no ``/proc`` to tell live processes by), else None."""
    if "OMP_NUM_THREADS" in environ:
        return "OMP_NUM_THREADS is set"
    if environ.get("FGAUG_OMP") == "leave":
        return "FGAUG_OMP=leave is set"
    share = environ.get("FGAUG_SHARE_CORES", "yes").lower()
    if share in ("no", "0", "false", "off"):
        return f"FGAUG_SHARE_CORES={environ['FGAUG_SHARE_CORES']} is set"
    if share not in ("yes", "1", "true", "on"):
        return f"FGAUG_SHARE_CORES={environ['FGAUG_SHARE_CORES']} is neither yes nor no"
    if not (PROC / "self" / "stat").is_file():
        return "no /proc to tell live processes by (Linux only)"
    return None


def threads_for(rank: int, processes: int, budget: int) -> int:
    """The threads of the ``rank``-th of ``processes`` sharing ``budget`` threads (docstring above)."""
    base, extra = divmod(budget, processes)
    return max(1, base + (1 if rank < extra else 0))


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None where it is not running (no
    such process, or a zombie that has exited and waits to be reaped)."""
    try:
        line = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = line.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold anything
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass(frozen=True, order=True)
class Member:
    """One registered process: ordered by start, then PID."""

    start: int
    pid: int

    def alive(self) -> bool:
        """Whether the process that registered still runs: a PID reused by a later process has
        another start time."""
        return process_start(self.pid) == self.start


def live_members(folder: Path) -> list[Member]:
    """The live processes registered in ``folder``; the files of dead ones are removed."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else ():
        if not path.name.isdigit():
            continue
        try:
            text = path.read_text()
            member = Member(int(text), int(path.name))
        except (OSError, ValueError):
            continue
        if member.alive():
            found.append(member)
        else:
            with contextlib.suppress(OSError):
                if path.read_text() == text:  # not re-registered meanwhile by a new process of that PID
                    path.unlink()
    return found


def private_folder(folder: Path) -> None:
    """Make ``folder`` (mode 0700) or check that it is this user's and that nobody else can write
    to it; anything else is refused with an :class:`OSError`."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(folder)


def check_private(folder: Path) -> None:
    """Refuse (:class:`OSError`) an existing ``folder`` that is not this user's own, only this user
    able to write to it."""
    status = folder.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise PermissionError(errno.EPERM, "not a folder of this user's that only this user can write to", str(folder))


def sharing_description() -> str:
    """Whether this machine's fgaug processes share the cores, and how many run now (``fgaug env``)."""
    blocker = sharing_blocker()
    if blocker is not None:
        return f"not shared ({blocker})"
    folder = registry_folder()
    try:
        if folder.exists() or folder.is_symlink():  # a command refuses a folder others can write to
            check_private(folder)
        running = len(live_members(folder))
    except OSError as error:
        return f"not shared: {folder}: {error.strerror}"
    return f"shared between the fgaug processes registered in {folder} ({running} running now)"


class CoreShare:
    """This process's place in the registry at ``folder`` and its share of ``budget`` threads."""

    def __init__(self, folder: Path, budget: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder, self.budget, self.clock = folder, budget, clock
        self.me = Member(process_start(os.getpid()) or 0, os.getpid())
        self.entry = folder / str(self.me.pid)
        self.checked = float("-inf")

    def join(self) -> None:
        """Write this process's file (its start time), atomically, into the private folder."""
        private_folder(self.folder)
        partial = self.entry.with_name(f".{self.me.pid}.partial")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(str(self.me.start))
        partial.replace(self.entry)

    def leave(self) -> None:
        """Remove this process's file and take back all the threads."""
        import torch

        with contextlib.suppress(OSError):
            self.entry.unlink(missing_ok=True)
        torch.set_num_threads(self.budget)

    def members(self) -> list[Member]:
        """The live registered processes, this one included."""
        return sorted({self.me, *live_members(self.folder)})

    def refresh(self) -> str | None:
        """Take this process's share now, if a second has passed since the last count. Returns a
        line for the user when the thread count changed, else None."""
        import torch

        now = self.clock()
        if now - self.checked < REFRESH_SECONDS:
            return None
        self.checked = now
        try:
            if not self.entry.is_file():  # removed meanwhile (a temporary-folder cleaner)
                self.join()
            members = self.members()
        except OSError:
            return None
        threads = threads_for(members.index(self.me), len(members), self.budget)
        if threads == torch.get_num_threads():
            return None
        torch.set_num_threads(threads)
        if len(members) == 1:
            return f"no other fgaug process is running: back to {threads} CPU threads"
        return (
            f"{len(members)} fgaug processes share this machine's {self.budget} CPU threads: "
            f"this one now uses {threads} (FGAUG_SHARE_CORES=no keeps them all)"
        )


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Active:
    """The share of the command running now, and where its messages go."""

    share: CoreShare | None = None
    log: Callable[[str], None] = to_stderr


ACTIVE = Active()


@contextmanager
def shared_cores(log: Callable[[str], None] = to_stderr) -> Iterator[CoreShare | None]:
    """This process registered and sharing the cores while the block runs (each
    :func:`take_share` then takes its share, and a change of its thread count goes to ``log``),
    its thread count restored after; None (nothing done) where sharing is not wanted or the
    registry cannot be written. Messages go to stderr unless ``log`` is given."""
    import torch

    if sharing_blocker() is not None or ACTIVE.share is not None:
        yield None
        return
    share = CoreShare(registry_folder(), torch.get_num_threads())
    try:
        share.join()
    except OSError:
        yield None
        return
    ACTIVE.share, ACTIVE.log = share, log
    try:
        yield share
    finally:
        ACTIVE.share = None
        share.leave()


def take_share() -> None:
    """Take this process's share of the cores now, if it shares them (:func:`shared_cores`) and a
    second has passed since it last counted. Every :class:`~fgaug.progress.Progress` calls this as
    a unit of work starts and ends, so every loop that reports its progress takes its share."""
    if ACTIVE.share is None:
        return
    message = ACTIVE.share.refresh()
    if message is not None:
        ACTIVE.log(message)
