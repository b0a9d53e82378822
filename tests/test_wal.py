"""wal.py: a store's write-ahead log read before SQLite opens it. A tail a crash tore is no
damage; bytes changed before commits that SQLite would then drop without a word are, and the
store refuses to open (a trial's restart had lost 300 acknowledged messages so)."""
import os
import shutil
import sqlite3

import pytest

import protocol
import wal
from storage import Store

COUNT = 30
FRAME = wal.FRAME_HEADER_BYTES + 4096


def left_by_a_crash(tmp_path):
    """A store's file and log as kill -9 leaves them (copied while it is open, COUNT commits
    in its log) -> the copy's path."""
    live = tmp_path / "live" / "chat.sqlite3"
    live.parent.mkdir()
    store = Store(str(live), exclusive=True)
    for n in range(COUNT):
        store.keep(["bob"], protocol.line_head({"type": "message", "from": "al", "text": f"m{n}"}))
        store.commit()
    crashed = tmp_path / "crashed" / "chat.sqlite3"
    crashed.parent.mkdir()
    shutil.copy(live, crashed)
    shutil.copy(f"{live}-wal", f"{crashed}-wal")
    store.close()
    return crashed


def texts(path):
    store = Store(str(path), exclusive=True)
    try:
        return [protocol.decode(line)["text"] for _, line in store.waiting("bob")]
    finally:
        store.close()


def changed(path, offset, count=8):
    with open(path, "r+b") as log:
        log.seek(offset)
        old = log.read(count)
        log.seek(offset)
        log.write(bytes(byte ^ 0xFF for byte in old))


def test_a_whole_log_is_no_damage_and_every_commit_is_read(tmp_path):
    path = left_by_a_crash(tmp_path)
    assert wal.damage(f"{path}-wal") is None
    assert texts(path) == [f"m{n}" for n in range(COUNT)]


def test_no_log_and_an_empty_one_are_no_damage(tmp_path):
    assert wal.damage(str(tmp_path / "none-wal")) is None
    (tmp_path / "empty-wal").write_bytes(b"")
    assert wal.damage(str(tmp_path / "empty-wal")) is None


def test_a_log_torn_anywhere_in_its_last_frame_is_no_damage(tmp_path):
    """A crash tears the tail: SQLite drops the torn commit, which no one was told of."""
    path = left_by_a_crash(tmp_path)
    log = f"{path}-wal"
    whole = open(log, "rb").read()
    last = len(whole) - FRAME
    for cut in [*range(last, last + wal.FRAME_HEADER_BYTES + 1),
                *range(last + 64, len(whole), 512)]:
        with open(log, "wb") as torn:
            torn.write(whole[:cut])
        assert wal.damage(log) is None, cut
    assert texts(path) == [f"m{n}" for n in range(COUNT - 1)]      # the torn one is gone


@pytest.mark.parametrize("offset, why", [
    (0, "it is not SQLite's"),                                # the magic number
    (4, "its header was changed"),                            # the format's version
    (8, "its header was changed"),                            # the page size
    (24, "its header was changed"),                           # its checksum
    (wal.HEADER_BYTES + FRAME * 3 + wal.FRAME_HEADER_BYTES + 100, "bytes in it were changed"),
    (wal.HEADER_BYTES + FRAME * 5 + 16, "bytes in it were changed"),   # a frame's checksum
])
def test_bytes_changed_before_commits_are_damage_and_the_store_will_not_open(
        tmp_path, offset, why):
    path = left_by_a_crash(tmp_path)
    changed(f"{path}-wal", offset)
    assert why in wal.damage(f"{path}-wal")
    with pytest.raises(sqlite3.DatabaseError, match="write-ahead log, .* is damaged: " + why):
        Store(str(path), exclusive=True)


def test_a_log_overwritten_whole_is_damage_and_the_store_will_not_open(tmp_path):
    """An operator's trial overwrote a killed server's log with random bytes of its size:
    SQLite read it as empty, and the start went on without the 100 acknowledged messages in
    it."""
    path = left_by_a_crash(tmp_path)
    log = f"{path}-wal"
    size = len(open(log, "rb").read())
    for garbage in (os.urandom(size), b"x" * wal.HEADER_BYTES):
        with open(log, "wb") as out:
            out.write(garbage)
        assert "it is not SQLite's" in wal.damage(log)
        with pytest.raises(sqlite3.DatabaseError, match="write-ahead log, .* is damaged") as no:
            Store(str(path), exclusive=True)
        assert f"or move {path}-wal out of the directory to start from the file alone" in (
            str(no.value))


def test_a_log_whose_header_is_zeros_is_read_as_a_crash_left_it(tmp_path):
    """Zeros are what a file system may show of a write a power cut interrupted: no
    damage, and nothing committed in it is read."""
    path = left_by_a_crash(tmp_path)
    log = f"{path}-wal"
    changed_to_zeros = bytearray(open(log, "rb").read())
    changed_to_zeros[:wal.HEADER_BYTES] = bytes(wal.HEADER_BYTES)
    with open(log, "wb") as out:
        out.write(changed_to_zeros)
    assert wal.damage(log) is None


def test_bytes_changed_in_the_last_commit_alone_are_a_torn_tail(tmp_path):
    """Nothing holds after it: it cannot be told from a tail a crash tore, and is read so."""
    path = left_by_a_crash(tmp_path)
    log = f"{path}-wal"
    size = len(open(log, "rb").read())
    changed(log, size - 100)
    assert wal.damage(log) is None
