"""How long-running API calls report progress, without depending on a terminal.

The API functions take a :class:`Progress`; the CLI passes a rich progress bar on a terminal and
plain log lines otherwise (:mod:`fgaug.cli.console`). :class:`SilentProgress` is the default.
Every implementation calls :func:`fgaug.cores.take_share` as a task starts and as it advances:
those are the moments a process that shares the CPU's cores takes its share.
"""

from __future__ import annotations

from typing import Any, Protocol

from fgaug.cores import take_share


class Progress(Protocol):
    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        """A new task of ``total`` units (None: unknown) begins, ``completed`` of them done before
        (a resumed run's): the count starts there, and rates count only the units done from now."""

    def advance(self, amount: int = 1, **fields: Any) -> None:
        """``amount`` units are done; ``fields`` are figures to show (loss, images/s...)."""

    def log(self, message: str) -> None:
        """A line worth showing the user (a checkpoint saved, a validation result)."""

    def stop(self) -> None:
        """The current task ended."""


class SilentProgress:
    """Reports nothing."""

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        take_share()

    def advance(self, amount: int = 1, **fields: Any) -> None:
        take_share()

    def log(self, message: str) -> None:
        pass

    def stop(self) -> None:
        pass
