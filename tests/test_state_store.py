"""The StateStore interface, on both backends: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from aggregator.errors import StateUnavailable

from .conftest import StateBackend


def test_put_get_and_missing_keys(state_backend: StateBackend) -> None:
    with state_backend.open() as store:
        assert store.get("parse", "a") is None
        store.put("parse", "a", b"\x00\x01binary\xff")
        store.put("feeds", "a", b"other namespace")
        assert store.get("parse", "a") == b"\x00\x01binary\xff"
        assert store.get("feeds", "a") == b"other namespace"
        store.put("parse", "a", b"replaced")
        assert store.get("parse", "a") == b"replaced"
    with state_backend.open() as again:  # it was stored, not only held
        assert again.get("parse", "a") == b"replaced"


def test_many_keys_items_and_deletes(state_backend: StateBackend) -> None:
    keys = [f"file:/r/{n:05d}.md" for n in range(2_500)]  # past any one batch of either
    with state_backend.open() as store:
        store.put_many("parse", [(key, key.encode() * 3) for key in keys])
        store.put("http", "meta https://x.example/", b"m")
        wanted = [*keys[::7], "file:/not/there.md"]
        assert store.get_many("parse", wanted) == {k: k.encode() * 3 for k in keys[::7]}
        assert store.get_many("parse", []) == {}
        assert list(store.keys("parse")) == keys
        assert store.items("parse") == {key: key.encode() * 3 for key in keys}
        store.delete_many("parse", keys[1000:])
        store.delete_many("parse", ["file:/never.md"])
        store.delete_many("parse", [])
        assert list(store.keys("parse")) == keys[:1000]
        assert store.items("http") == {"meta https://x.example/": b"m"}
        assert store.items("nothing") == {}


def test_keys_come_in_byte_order_on_both(state_backend: StateBackend) -> None:
    """Keys sort by their bytes (code points), never by a locale's rules: what a
    namespace lists is the same on SQLite and PostgreSQL."""
    keys = ["b", "B", "a", "ä", "Z", "a b", "a-b", "ab", "😀", "é", "e"]
    with state_backend.open() as store:
        store.put_many("k", [(key, b"") for key in keys])
        assert list(store.keys("k")) == sorted(keys)
        assert list(store.items("k")) == sorted(keys)


def test_a_transaction_lands_whole_or_not_at_all(state_backend: StateBackend) -> None:
    with state_backend.open() as store:
        store.put("t", "kept", b"before")
        with store.transaction():
            store.put("t", "a", b"1")
            with store.transaction():  # nested: lands with the outer one
                store.put("t", "b", b"2")
                store.delete_many("t", ["kept"])
        assert store.items("t") == {"a": b"1", "b": b"2"}
        with pytest.raises(RuntimeError), store.transaction():
            store.put("t", "c", b"3")
            with store.transaction():
                store.put_many("t", [("d", b"4"), ("a", b"changed")])
            raise RuntimeError("a failure after the inner block")
        assert store.items("t") == {"a": b"1", "b": b"2"}
        with pytest.raises(KeyError), store.transaction(), store.transaction():
            store.put("t", "e", b"5")
            raise KeyError("inner")
        assert store.items("t") == {"a": b"1", "b": b"2"}
        store.put("t", "f", b"6")  # the store is usable after a rollback
        assert store.get("t", "f") == b"6"


def test_another_connection_sees_only_committed_writes(state_backend: StateBackend) -> None:
    with state_backend.open() as writer, state_backend.open() as reader:
        with writer.transaction():
            writer.put("t", "a", b"1")
            assert reader.get("t", "a") is None
        assert reader.get("t", "a") == b"1"


WRITER = """
import sys
from pathlib import Path
from aggregator.state.postgres import PostgresStore
from aggregator.state.sqlite import SqliteStore
target, batch = sys.argv[1], int(sys.argv[2])
store = PostgresStore.open(target) if "://" in target else SqliteStore.open(Path(target))
print("ready", flush=True)
while True:
    with store.transaction():
        for key in range(50):
            store.put("test", f"{batch}:{key}", b"x" * 2000)
        store.put("test", "last", str(batch).encode())
    batch += 1
"""


def test_a_writer_killed_mid_transaction_leaves_whole_batches(state_backend: StateBackend) -> None:
    target = state_backend.url or str(state_backend.path)
    rng = random.Random(7)
    batch = 0
    for _attempt in range(4):
        process = subprocess.Popen([sys.executable, "-c", WRITER, target, str(batch)],
                                   stdout=subprocess.PIPE)  # fmt: skip
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.3))  # killed at a random point of its writes
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        with state_backend.open() as store:
            batches: dict[str, int] = {}
            for key in store.keys("test"):
                if key != "last":
                    batches[key.split(":")[0]] = batches.get(key.split(":")[0], 0) + 1
            assert batches, "the writer committed nothing"
            assert all(count == 50 for count in batches.values()), batches
        batch += 1000


def test_a_server_that_is_not_there_is_one_clear_error() -> None:
    import socket

    from aggregator.state.postgres import PostgresStore

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StateUnavailable) as raised:
        PostgresStore.open(f"postgresql://news:s3cret@127.0.0.1:{port}/news")
    message = str(raised.value)
    assert "s3cret" not in message
    assert message.startswith(f"postgresql://news:***@127.0.0.1:{port}/news: ")
    assert "\n" not in message


@pytest.mark.parametrize("url", [
    "postgresql://news:s3cret@[bad/news",  # libpq quotes an unparseable URL back
    "postgresql://news:s3cret@127.0.0.1:notaport/news",
    "postgresql://news@127.0.0.1:1/news?password=s3cret&sslmode=nope",
])  # fmt: skip
def test_no_message_shows_the_password(url: str) -> None:
    from aggregator.state.postgres import PostgresStore

    with pytest.raises(StateUnavailable) as raised:
        PostgresStore.open(url)
    assert "s3cret" not in str(raised.value)
    assert "\n" not in str(raised.value)
