"""The one incremental decision: what changed since the last build, and what to redo.

`decide` compares what the state remembers (the last build's Snapshot) with what is
found now (the record files' listings with their stamps, the settings digest, remote
sources, `--full`, whether the last build's output is still on disk as written) and
returns a Decision. It is pure: plain values in, a frozen value out, no I/O. The build
gathers the facts once and carries the Decision out; no stage looks at another stage's
cache to decide.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from aggregator.state.keys import Listing, names_of

if TYPE_CHECKING:
    from aggregator.state.snapshot import Snapshot

CHANGES_FLOOR = 100  # changed files always applied one by one
CHANGES_SHARE = 0.05  # more changed files than this share of all: the full path
_STRETCH = 512  # files whose stamps are compared at once (see _edits_by_place)
_FEW_MOVES = 1_000  # files come or gone in a folder below which listings are lined up
_LOOK_AHEAD = 64  # names looked ahead for where a listing that differs lines up again
_FAR_LOOKS = 16  # and how many times all the way, past that (see _moves)
_Values = TypeVar("_Values", bound=MutableSequence[Any])


class Redo(enum.Enum):
    """What a build has to do again."""

    NOTHING = "nothing"  # the last build again: its counts and problems, no file read
    CHANGES = "changes"  # the changed files applied to the last build's stories
    FULL = "full"  # the whole pipeline; unchanged files still come from the parse cache


@dataclass(frozen=True, slots=True)
class Decision:
    """What changed since the last build and what to redo about it.

    File lists hold parse-cache keys in the order the files are found (deleted ones:
    where they were), so equal inputs give equal Decisions.
    """

    redo: Redo
    remembered: bool  # a last build to compare with (none on a first build or --full)
    added: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()  # same key, another stamp (size or mtime)
    deleted: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (old key, new key), the same stamp
    unstamped: tuple[str, ...] = ()  # files found without a stat: their state is unknown
    settings_changed: bool = False
    remote: bool = False  # remote sources: a server may have changed, so never NOTHING
    forced: bool = False  # --full
    output_touched: bool = False  # a file the last build wrote is gone or differs
    held: bool = False  # a folder could not be read: its last records are held
    # (key, size, mtime_ns) of each file added, edited or renamed to, as found now: the
    # stamp its parse-cache entry is kept under (the listing is not searched again).
    stamps: tuple[tuple[str, int, int], ...] = ()

    @property
    def changed_files(self) -> int:
        return len(self.added) + len(self.edited) + len(self.deleted) + len(self.renamed)

    def stamp_now(self) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) now of each file added, edited or renamed to."""
        return {key: (size, mtime) for key, size, mtime in self.stamps}

    @property
    def files_changed(self) -> bool:
        return bool(self.added or self.edited or self.deleted or self.renamed or self.unstamped)

    @property
    def remember(self) -> bool:
        """Whether this build may be remembered for the next one to compare with: only
        when every input is known from local stamps."""
        return not self.remote and not self.unstamped


def decide(
    remembered: Snapshot | None,
    listings: Mapping[str, Listing],
    settings: bytes,
    *,
    unstamped: Iterable[str] = (),
    remote: bool = False,
    full: bool = False,
    output_intact: bool = False,
    held: bool = False,
    stories: bool = False,
    order: Callable[[str], Any] | None = None,
) -> Decision:
    """The Decision for a build that finds the record files of `listings` (folder key
    -> its files as listed, FoundFiles.listings) and `settings` (settings_digest) where
    the last build left `remembered`.

    `unstamped` are files found without a stat; `output_intact` says every file the
    last build wrote is on disk with the bytes it wrote; `held`, that a folder could not
    be read; `stories`, that the last build left its story table; `order`, the sort key
    that puts file keys in the order the files are found (FoundFiles.order_of).

    Redo.CHANGES when only record files changed, and few of them (at most
    CHANGES_SHARE of the files, or CHANGES_FLOOR): applying many changes one by one
    costs more than the full path, which reads every other file from the parse cache.
    """
    unknown = tuple(unstamped)
    if remembered is None:
        return Decision(Redo.FULL, False, unstamped=unknown, remote=remote, forced=full)
    before = remembered.listings
    added: list[str] = []
    edited: list[str] = []
    deleted: list[str] = []
    renamed: tuple[tuple[str, str], ...] = ()
    new: dict[str, tuple[int, int]] = {}  # stamps now, of files edited or added
    # Equal listings compare in C, folder by folder: the common no-change case stays
    # cheap. Only the folders that differ are looked at file by file.
    if before != listings:
        old: dict[str, tuple[int, int]] = {}  # stamps before, of files edited or gone
        for folder in listings.keys() | before.keys():
            then, now = before.get(folder), listings.get(folder)
            if then != now:
                _compare(folder, then, now, old, new)
        for key in unknown:
            new.pop(key, None)  # there, not measured: neither added, edited nor gone
            old.pop(key, None)
        added = sorted(new.keys() - old.keys(), key=order)
        edited = sorted(new.keys() & old.keys(), key=order)
        deleted = sorted(old.keys() - new.keys(), key=order)
        renamed = _renames(deleted, added, old, new)
    if renamed:
        moved = {old for old, _ in renamed} | {new for _, new in renamed}
        added = [key for key in added if key not in moved]
        deleted = [key for key in deleted if key not in moved]
    decision = Decision(
        Redo.FULL,
        True,
        added=tuple(added),
        edited=tuple(edited),
        deleted=tuple(deleted),
        renamed=renamed,
        unstamped=unknown,
        settings_changed=remembered.settings != settings,
        remote=remote,
        forced=full,
        output_touched=not output_intact,
        held=held,
        stamps=tuple((key, *new[key]) for key in (*added, *edited, *(n for _, n in renamed))),
    )
    same = not (
        decision.files_changed
        or decision.settings_changed
        or remote
        or full
        or decision.output_touched
    )
    if same:
        return Decision(Redo.NOTHING, True)
    total = sum(len(sizes) for _, sizes, _ in listings.values())
    few = decision.changed_files <= max(CHANGES_FLOOR, int(total * CHANGES_SHARE))
    if (stories and few and not (decision.settings_changed or remote or full or held or unknown)
            and decision.files_changed):  # fmt: skip
        return replace(decision, redo=Redo.CHANGES)
    return decision


def _compare(
    folder: str,
    then: Listing | None,
    now: Listing | None,
    old: dict[str, tuple[int, int]],
    new: dict[str, tuple[int, int]],
) -> None:
    """Into `old` and `new`, by file key, the stamps of the files of one folder that
    differ between two listings of it (either may be None: no such folder)."""
    if then is None or now is None:
        listed = then or now
        assert listed is not None
        into = old if now is None else new
        into.update(zip([folder + name for name in names_of(listed)],
                        zip(listed[1], listed[2], strict=True), strict=True))  # fmt: skip
        return
    _, sizes, mtimes = now
    _, old_sizes, old_mtimes = then
    names = names_of(now)
    if now[0] == then[0]:  # the same files in the same order: edits only, found by place
        _edits_by_place(folder, names, sizes, mtimes, old_sizes, old_mtimes, old, new)
        return
    old_names = names_of(then)
    moves = _moves(names, old_names)
    if moves is not None:
        # A few files came or went: the OS lists the others in the same order as before
        # (as a rule), so without those the two listings line up, place by place.
        come_at, gone_at = moves
        kept = _without(names, come_at)
        if kept == _without(old_names, gone_at) and {names[at] for at in come_at}.isdisjoint(
            old_names[at] for at in gone_at
        ):
            for at in come_at:
                new[folder + names[at]] = sizes[at], mtimes[at]
            for at in gone_at:
                old[folder + old_names[at]] = old_sizes[at], old_mtimes[at]
            _edits_by_place(folder, kept, _without(sizes, come_at), _without(mtimes, come_at),
                            _without(old_sizes, gone_at), _without(old_mtimes, gone_at), old,
                            new)  # fmt: skip
            return
    was = {name: (size, mtime) for name, size, mtime in zip(old_names, old_sizes, old_mtimes,
                                                          strict=True)}  # fmt: skip
    for name, size, mtime in zip(names, sizes, mtimes, strict=True):
        stamp = was.pop(name, None)
        if stamp is None:
            new[folder + name] = size, mtime
        elif stamp != (size, mtime):
            old[folder + name] = stamp
            new[folder + name] = size, mtime
    old.update((folder + name, stamp) for name, stamp in was.items())


def _edits_by_place(
    folder: str,
    names: list[str],
    sizes: Sequence[int],
    mtimes: Sequence[int],
    old_sizes: Sequence[int],
    old_mtimes: Sequence[int],
    old: dict[str, tuple[int, int]],
    new: dict[str, tuple[int, int]],
) -> None:
    """The files whose stamps differ between two listings of the same names in the same
    order. Stretches of stamps are compared in C first: a few edits among a folder of a
    hundred thousand files are found without a Python step for every file."""
    for low in range(0, len(sizes), _STRETCH):
        high = low + _STRETCH
        if sizes[low:high] == old_sizes[low:high] and mtimes[low:high] == old_mtimes[low:high]:
            continue
        for at in range(low, min(high, len(sizes))):
            if sizes[at] != old_sizes[at] or mtimes[at] != old_mtimes[at]:
                old[folder + names[at]] = old_sizes[at], old_mtimes[at]
                new[folder + names[at]] = sizes[at], mtimes[at]


def _moves(names: list[str], old_names: list[str]) -> tuple[list[int], list[int]] | None:
    """Where names came into a listing and went out of the last one, when it is the
    last one with a few (up to _FEW_MOVES) put in or taken out and the rest in the same
    order; else None (the caller checks the two line up). Equal stretches are compared
    in C, so a few moves in a folder of a hundred thousand files take no set of its
    names (benchmarks/bench_build.py, "+10 files" and "10 deletions")."""
    come_at: list[int] = []
    gone_at: list[int] = []
    at = was = 0
    far_looks = _FAR_LOOKS
    while at < len(names) and was < len(old_names):
        if len(come_at) + len(gone_at) > _FEW_MOVES:
            return None
        if names[at : at + _STRETCH] == old_names[was : was + _STRETCH]:
            at += _STRETCH
            was += _STRETCH
            continue
        while at < len(names) and was < len(old_names) and names[at] == old_names[was]:
            at += 1
            was += 1
        if at == len(names) or was == len(old_names):
            break
        # The nearer of: names came up to where the old one is met again, or old names
        # went up to where this one was; looked for a little way ahead first, then (a
        # few times: each look is a pass over the folder) all the way. Neither: this
        # one came and the old one went (a file replaced, or renamed in its place).
        came = _ahead(names, old_names[was], at, _LOOK_AHEAD)
        went = _ahead(old_names, names[at], was, _LOOK_AHEAD)
        if came is None and went is None and far_looks:
            far_looks -= 1
            came = _ahead(names, old_names[was], at, len(names))
            went = _ahead(old_names, names[at], was, len(old_names))
        if came is not None and (went is None or came <= went):
            come_at.extend(range(at, at + came))
            at += came
        elif went is not None:
            gone_at.extend(range(was, was + went))
            was += went
        else:
            come_at.append(at)
            gone_at.append(was)
            at += 1
            was += 1
    come_at.extend(range(at, len(names)))
    gone_at.extend(range(was, len(old_names)))
    return None if len(come_at) + len(gone_at) > _FEW_MOVES else (come_at, gone_at)


def _ahead(names: list[str], name: str, at: int, ahead: int) -> int | None:
    """How far past `at` `name` is in `names`, looking at most `ahead` names on."""
    try:
        return names.index(name, at + 1, at + 1 + ahead) - at
    except ValueError:
        return None


def _without(values: _Values, places: list[int]) -> _Values:
    """A copy of `values` without the items at `places` (in order; a few)."""
    kept = values[:]
    for at in reversed(places):
        del kept[at]
    return kept


def _renames(
    deleted: list[str],
    added: list[str],
    before: Mapping[str, tuple[int, int]],
    now: Mapping[str, tuple[int, int]],
) -> tuple[tuple[str, str], ...]:
    """A deleted key and an added key with the same stamp (size and mtime_ns: a move
    keeps both) are one file renamed; equal stamps pair in the order found."""
    if not deleted or not added:
        return ()
    gone: dict[tuple[int, int], list[str]] = {}
    for key in deleted:
        gone.setdefault(before[key], []).append(key)
    pairs = []
    for key in added:
        candidates = gone.get(now[key])
        if candidates:
            pairs.append((candidates.pop(0), key))
    return tuple(pairs)
