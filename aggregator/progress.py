"""A progress bar on stderr while fetching, only when a person is watching (a terminal).

Under cron or in a pipe nothing is drawn, so logs hold only the report lines.
"""

from __future__ import annotations

from typing import Protocol, TextIO

BAR_WIDTH = 24
LABEL_WIDTH = 40


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, label: str) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, label: str) -> None:
        pass

    def finish(self) -> None:
        pass


class TerminalProgress:
    """Redraws one line in place: `fetching [#####     ] 12/200 https://…`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._total = 0
        self._done = 0

    def start(self, total: int) -> None:
        self._total, self._done = total, 0
        self._draw("")

    def advance(self, label: str) -> None:
        self._done += 1
        self._draw(label)

    def finish(self) -> None:
        self._stream.write("\r\x1b[K")  # clear the line, so the report starts clean
        self._stream.flush()

    def _draw(self, label: str) -> None:
        filled = BAR_WIDTH * self._done // self._total if self._total else BAR_WIDTH
        bar = "#" * filled + " " * (BAR_WIDTH - filled)
        if len(label) > LABEL_WIDTH:
            label = "…" + label[-(LABEL_WIDTH - 1) :]
        self._stream.write(f"\rfetching [{bar}] {self._done}/{self._total} {label}\x1b[K")
        self._stream.flush()


def progress_for(stream: TextIO) -> Progress:
    """A bar on a terminal; nothing at all otherwise."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        interactive = False
    return TerminalProgress(stream) if interactive else SilentProgress()
