"""Typed errors and problems. Every error carries where it happened.

Errors are raised on purpose and caught where the command decides what to say; bad
input never raises out of a stage, it becomes a Problem (one line: where, field, what
was wrong, what was done). The tree, with where each is raised and what it costs:

    AggregatorError
    ├── ConfigError          a setting (`key`, `line`): the command stops, exit 2
    │   └── ConfigErrors     several found in one pass, one line each
    ├── StateUnavailable     the state store cannot be used (state/): a ConfigError for
    │                        [build] state_path, or a warning where a build can go on
    ├── WriteFailed          an output file could not be written (output/): exit 5
    ├── BuildLocked          another build holds the lock (lock.py): exit 3 after
    │                        [build] lock_timeout
    ├── WorkerDied           a worker process died (raised in parallel.py): exit 4,
    │                        rerun
    ├── UnsafePath           an output path that would leave the output folder
    ├── UnparseableBody      a fetched body is no feed, JSON or YAML (parse/feeds.py)
    ├── FetchError           a URL could not be fetched (sources/http.py): its source
    │   │                    keeps its last good records, exit 1
    │   ├── ConnectionFailed ─ TimedOut
    │   ├── HTTPStatusFailure, RedirectFailure, RefusedAddress
    │   └── ResponseTooLarge, BadContentEncoding
    └── RecordError          one record or file (`field`, `line`): a Problem, record
        ├── NotARecord       skipped (parse/documents.py)
        └── LimitExceeded    a size or depth cap (limits.py)

Outside the tree, because they never leave the module that raises them: Undecodable
(state/codec.py: a stored value that cannot be read back is a cache miss), NotPlain
(parse/plainyaml.py: the fast path hands over to full YAML), Unpublished
(validate.py: the record is counted, not shown), ContentDecodingError
(sources/decompress.py, becomes BadContentEncoding) and SiteExists (newsite.py).
`sources.http.NotModified` is a result (a 304), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass


class AggregatorError(Exception):
    """Base class for every error this package raises on purpose."""


class WorkerDied(AggregatorError):
    """A worker process ended in the middle of its work (killed, or out of memory)."""

    def __init__(self, workers: int) -> None:
        super().__init__(
            f"one of the {workers} worker processes ended abruptly (killed, or out of "
            "memory? `[build] workers` sets how many run); nothing more was written"
        )


class ConfigError(AggregatorError):
    """The configuration is unusable; `key` names the offending setting, `line` (from 1)
    where it is in the file, when known."""

    def __init__(self, path: str, key: str, expected: str, *, line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key}: {expected}")

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every error this one stands for, one line each."""
        return (self,)


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass, in the order of their lines."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.key, first.expected, line=first.line)
        self._errors = tuple(errors)
        self.args = ("\n".join(str(error) for error in errors),)

    def __str__(self) -> str:
        return self.args[0]

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors


class WriteFailed(AggregatorError):
    """An output file could not be written (a full disk, an I/O error): the build stopped."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UploadFailed(WriteFailed):
    """An object could not be put in (or deleted from) object storage: the build stopped
    there. `path` is the object's URL; what was not confirmed is sent again next build.
    `changed`: the relative paths that did change in the bucket before it stopped."""

    def __init__(self, path: str, reason: str, changed: tuple[str, ...] = ()) -> None:
        super().__init__(path, reason)
        self.changed = changed


class StateUnavailable(AggregatorError):
    """The state store cannot be opened or used (a folder in its place, a server that
    does not answer); `location` is its file or URL (without a password)."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{location}: {reason}")


class RecordError(AggregatorError):
    """One record (or one whole file) could not be used."""

    def __init__(self, field: str | None, reason: str, *, line: int | None = None) -> None:
        self.field = field
        self.reason = reason
        self.line = line
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True, slots=True)
class Problem:
    """A reported issue with one input: where, which field, what, and what was done."""

    origin: str
    line: int | None
    field: str | None
    reason: str
    action: str = "record skipped"
    severity: str = "error"  # "error" counts as a rejection; "warning" does not

    def __str__(self) -> str:
        where = self.origin if self.line is None else f"{self.origin}:{self.line}"
        what = f"{self.field}: {self.reason}" if self.field else self.reason
        return _printable(f"{where}: {self.severity}: {what}; {self.action}")


def _printable(text: str) -> str:
    """One safe line: control characters (a newline or terminal escape in a hostile file
    name or value) are shown escaped instead of acting on the terminal or the log."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def shown(value: object, limit: int = 60) -> str:
    """A short, safe repr of a bad value for a message: long strings and containers are
    cut, and huge integers (whose repr raises past 4300 digits) are described instead."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        text = repr(value[: limit + 1] if isinstance(value, str | bytes) else value)
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
