"""Progress of long work, for the person waiting on a command: always on stderr, so stdout (a
table, JSON, a rendered tree) stays clean.

On a terminal it is a rich progress bar (what is being done, a bar, done/total, time spent,
the last step); elsewhere (a CI log, a pipe, a file) one plain line per step, each starting
with the command's name, so a log keeps every step and a script can read them. ``--no-progress``
style switches pass ``enabled=False``.

    with Progress("reading nodes", total=len(nodes), prefix="render") as progress:
        for node in nodes:
            ...
            progress.step(f"{node}: read")

Steps may come from worker threads.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import IO, Any


class Progress:
    """Progress of one piece of work made of steps (``total`` of them, or an unknown number).

    :param what: what is being done, in a few words ("reading nodes", "measuring").
    :param total: how many steps there are; None when unknown.
    :param out: where it goes (default: stderr).
    :param prefix: the command's name, at the start of each plain line.
    :param enabled: False: nothing is shown at all.
    :param terminal: draw a progress bar (default: when ``out`` is a terminal).
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        out: IO[str] | None = None,
        prefix: str = "",
        enabled: bool = True,
        terminal: bool | None = None,
    ) -> None:
        self.what = what
        self.total = total
        self.out = out if out is not None else sys.stderr
        self.prefix = prefix
        self.enabled = enabled
        self.terminal = _is_terminal(self.out) if terminal is None else terminal
        self.done = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Show the work as started (the bar, or a first plain line)."""
        if not self.enabled:
            return
        if self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar

            console = Console(file=self.out, force_terminal=True, highlight=False)
            # A bar and done/total when the number of steps is known; a spinner and the time otherwise.
            counted = (BarColumn(), MofNCompleteColumn()) if self.total is not None else ()
            self._bar = Bar(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("[bold]{task.description}"),
                *counted,
                TimeElapsedColumn(),
                TextColumn("{task.fields[last]}"),
                console=console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._title(), total=self.total, last="")
        else:
            self._line(f"{self.what}" + (f" ({self.total})" if self.total is not None else "") + "...")

    def step(self, text: str = "", advance: int = 1) -> None:
        """One step done; ``text`` says which (a node, a round)."""
        if not self.enabled:
            return
        with self._lock:
            self.done += advance
            if self._bar is not None:
                self._bar.update(self._task, advance=advance, last=text)
                return
            count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
            self._line(f"{self.what} {count}" + (f": {text}" if text else ""))

    def note(self, text: str) -> None:
        """Say what is happening now, without counting a step."""
        if not self.enabled:
            return
        with self._lock:
            if self._bar is not None:
                self._bar.update(self._task, last=text)
                return
            self._line(f"{self.what}: {text}")

    def stop(self) -> None:
        """The work is over: the bar is drawn a last time and the terminal left on a new line."""
        if self._bar is not None:
            if self.total is None:  # work of unknown length is over when it stops: show it done
                self._bar.update(self._task, total=max(self.done, 1), completed=max(self.done, 1))
            self._bar.stop()
            self._bar = None

    def _title(self) -> str:
        return f"{self.prefix}: {self.what}" if self.prefix else self.what

    def _line(self, text: str) -> None:
        self.out.write(f"{self.prefix}: {text}\n" if self.prefix else f"{text}\n")
        self.out.flush()


def _is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
