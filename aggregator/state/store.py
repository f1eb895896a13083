"""The interface every state backend implements: namespaced keys to bytes.

A namespace is one kind of memory ("parse", "feeds", "build", "http", ...); its values
are bytes in the one encoding of aggregator.state.codec. Writes are grouped in
transactions: all of them land, or (on error or kill) none.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager


class StateStore(abc.ABC):
    """What a build remembers between runs (see aggregator.state)."""

    location: str  # the file or URL, for messages (never a password)

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them land, or (on error or kill) none. Nests."""

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those of `keys` that are stored."""

    @abc.abstractmethod
    def items(self, namespace: str) -> dict[str, bytes]: ...

    @abc.abstractmethod
    def keys(self, namespace: str) -> Iterator[str]:
        """The namespace's keys, without reading their values."""

    @abc.abstractmethod
    def put_many(self, namespace: str, pairs: Iterable[tuple[str, bytes]]) -> None: ...

    @abc.abstractmethod
    def delete_many(self, namespace: str, keys: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.put_many(namespace, [(key, value)])

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
