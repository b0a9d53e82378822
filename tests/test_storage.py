"""Tests of storage.py: the credentials file and the SQLite store."""
import pathlib
import sqlite3

import pytest

from passwords import CredentialsError, load_credentials
from storage import Store

COURSE_ACCOUNTS = {
    "columbia": "116bway", "seas": "summerisover", "csee4119": "lotsofexams",
    "foobar": "passpass", "windows": "withglass", "google": "hasglasses",
    "facebook": "wastingtime", "wikipedia": "donation", "network": "seemsez",
}


def write(tmp_path, text, name="credential.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


# --- credentials ---

def test_the_shipped_credential_file_has_the_nine_course_accounts():
    shipped = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
    assert load_credentials(shipped) == COURSE_ACCOUNTS


def test_credentials_allow_any_whitespace_comments_and_no_final_newline(tmp_path):
    path = write(tmp_path, "# the accounts\n\n  alice\t pw1  \r\n#bob nope\n   \n"
                           "carol  pw\u00e9\ndave x#y")
    assert load_credentials(path) == {"alice": "pw1", "carol": "pw\u00e9", "dave": "x#y"}


def test_an_empty_file_has_no_accounts(tmp_path):
    assert load_credentials(write(tmp_path, "")) == {}


@pytest.mark.parametrize("line, count", [("alice", 1), ("alice hunter2 extra", 3)])
def test_a_malformed_line_is_named_without_its_password(tmp_path, line, count):
    path = write(tmp_path, f"bob ok\n\n{line}\n")
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path)
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and f"{count} fields" in message
    assert "hunter2" not in message and "extra" not in message


def test_a_duplicate_user_is_named_with_its_line(tmp_path):
    path = write(tmp_path, "alice one\nbob two\nalice secret3\n")
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path)
    message = str(caught.value)
    assert "line 3" in message and "'alice'" in message and "secret3" not in message


def test_a_file_that_is_not_utf8_is_a_credentials_error(tmp_path):
    path = write(tmp_path, b"alice \xff\xfe\n")
    with pytest.raises(CredentialsError, match="not valid UTF-8"):
        load_credentials(path)


# --- the store ---

def keep(store, recipient, frame, offline=True):
    """Keep one frame for one recipient -> its number."""
    return store.keep_for([(recipient, offline)], frame)[0]


def take(store, recipient):
    """What waits for `recipient`, acknowledged at once -> the frames."""
    rows = store.waiting(recipient)
    if rows:
        store.acknowledge(recipient, rows[-1][0])
    return [frame for _, frame, _ in rows]


def test_offline_frames_come_back_in_order_once():
    store = Store(":memory:")
    first = keep(store, "bob", {"type": "message", "from": "alice", "text": "1"})
    second = keep(store, "bob", {"type": "message", "from": "carol", "text": " ☃ 2 "})
    keep(store, "carol", {"type": "message", "from": "alice", "text": "other"})
    assert second > first
    assert store.count_waiting("bob") == 2
    assert take(store, "bob") == [
        {"type": "message", "from": "alice", "text": "1"},
        {"type": "message", "from": "carol", "text": " ☃ 2 "}]
    assert take(store, "bob") == []
    assert store.count_waiting("bob") == 0
    assert store.count_waiting("carol") == 1


def test_frames_kept_after_a_take_are_not_lost():
    store = Store(":memory:")
    keep(store, "bob", {"n": 1})
    assert take(store, "bob") == [{"n": 1}]
    keep(store, "bob", {"n": 2})
    assert take(store, "bob") == [{"n": 2}]


def test_blocks_are_one_way_and_idempotent():
    store = Store(":memory:")
    assert store.blocks("alice") == set()
    store.add_block("alice", "bob")
    store.add_block("alice", "bob")
    store.add_block("alice", "carol")
    assert store.blocks("alice") == {"bob", "carol"}
    assert store.is_blocked("alice", "bob")
    assert not store.is_blocked("bob", "alice")
    store.remove_block("alice", "bob")
    store.remove_block("alice", "nobody")
    assert store.blocks("alice") == {"carol"}
    assert not store.is_blocked("alice", "bob")
    store.remove_block("alice", "carol")
    store.add_block("dave", "erin")
    assert store.blocks("alice") == set() and store.blocks("bob") == set()
    assert store.blocks("dave") == {"erin"}     # the shared empty list was not changed


def test_a_file_store_uses_wal_and_survives_close_after_commit(tmp_path):
    path = tmp_path / "chat.db"
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "from": "alice", "text": "kept"})
    store.add_block("bob", "carol")
    store.commit()
    store.close()
    assert path.exists()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reopened = Store(str(path))
    assert reopened.blocks("bob") == {"carol"}
    assert take(reopened, "bob") == [{"type": "message", "from": "alice", "text": "kept"}]
    reopened.close()


def test_an_uncommitted_write_does_not_survive(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    keep(store, "bob", {"n": 1})
    store.commit()
    keep(store, "bob", {"n": 2})
    store.add_block("bob", "carol")
    assert take(store, "bob") == [{"n": 1}, {"n": 2}]  # visible before commit
    store.close()
    reopened = Store(path)
    assert take(reopened, "bob") == [{"n": 1}]
    assert reopened.blocks("bob") == set()
    reopened.close()


def test_a_take_is_undone_with_its_transaction(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    keep(store, "bob", {"n": 1})
    store.commit()
    assert take(store, "bob") == [{"n": 1}]
    store.close()  # crashed before the pass committed: the frame must still be there
    reopened = Store(path)
    assert reopened.count_waiting("bob") == 1
    reopened.close()


def test_one_frame_kept_for_many_gets_consecutive_numbers_in_one_go():
    store = Store(":memory:")
    before = keep(store, "carol", {"n": 0}, offline=True)
    seqs = store.keep_for([("alice", False), ("bob", True), ("carol", False)], {"n": 1})
    assert list(seqs) == [before + 1, before + 2, before + 3]
    assert store.waiting("bob") == [(before + 2, {"n": 1}, True)]
    assert store.waiting("carol") == [(before, {"n": 0}, True), (before + 3, {"n": 1}, False)]
    assert list(store.keep_for([], {"n": 2})) == []


def test_a_number_is_never_given_twice_even_after_acks_and_a_restart(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    seqs = list(store.keep_for([("bob", True), ("bob", True)], {"n": 1}))
    store.acknowledge("bob", seqs[-1])          # the inbox is empty again
    store.commit()
    store.close()
    reopened = Store(path)
    assert keep(reopened, "bob", {"n": 2}, offline=True) == seqs[-1] + 1
    reopened.close()


def test_kept_rows_are_seen_by_every_read_at_once_and_by_others_only_after_commit(tmp_path):
    """keep_for holds its rows until the commit writes them in one statement; the store's own
    reads, counts and deletes see them at once."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    seqs = list(store.keep_for([("bob", False), ("carol", True)], {"n": 1}, text='{"n":1}'))
    assert store.count_waiting("bob") == 1
    keep(store, "bob", {"n": 2}, offline=False)
    assert [frame for _, frame, _ in store.waiting("bob")] == [{"n": 1}, {"n": 2}]
    keep(store, "carol", {"n": 3}, offline=True)
    store.acknowledge("carol", seqs[1])           # deletes the row kept before it, not after
    assert [frame for _, frame, _ in store.waiting("carol")] == [{"n": 3}]
    keep(store, "dave", {"n": 4}, offline=True)
    other = sqlite3.connect(path)
    count = "SELECT COUNT(*) FROM inbox"
    assert other.execute(count).fetchone() == (0,)      # nothing committed yet
    store.commit()
    assert other.execute(count).fetchone() == (4,)      # bob's two, carol's 3 and dave's
    other.close()
    store.close()


def test_an_acknowledgement_waits_for_the_next_durable_write_but_reads_see_it_at_once(tmp_path):
    """A delete for an ack costs no disk sync of its own: a commit with nothing else to write
    leaves it held (a crash then sends those messages again; the client knows their numbers).
    It goes with the next commit that writes anything, or with commit(acks_too=True)."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    first = keep(store, "bob", {"n": 1}, offline=False)
    keep(store, "bob", {"n": 2}, offline=False)
    store.commit()
    other = sqlite3.connect(path)
    count = "SELECT COUNT(*) FROM inbox"
    store.acknowledge("bob", first)
    store.acknowledge("bob", first - 1)         # an older ack changes nothing
    store.commit()
    assert other.execute(count).fetchone() == (2,)      # held: no transaction, no sync
    assert store.count_waiting("bob") == 1              # but the store itself reads it at once
    store.commit()
    assert other.execute(count).fetchone() == (1,)      # that read wrote it, so it went along
    store.acknowledge("bob", first + 1)
    store.add_block("carol", "dave")                    # a durable write: the ack goes with it
    store.commit()
    assert other.execute(count).fetchone() == (0,)
    keep(store, "bob", {"n": 3}, offline=False)
    store.commit()
    store.acknowledge("bob", first + 2)
    store.commit(acks_too=True)                         # at shutdown
    assert other.execute(count).fetchone() == (0,)
    other.close()
    store.close()


@pytest.mark.parametrize("sync, level", [("full", 2), ("normal", 1)])
def test_a_file_store_syncs_each_commit_unless_told_normal(tmp_path, sync, level):
    store = Store(str(tmp_path / "chat.db"), sync=sync) if sync != "full" else Store(
        str(tmp_path / "chat.db"))
    assert store._db.execute("PRAGMA synchronous").fetchone() == (level,)
    store.close()
    with pytest.raises(ValueError, match="sync must be"):
        Store(":memory:", sync="off")


def test_a_data_directory_from_before_keeps_its_messages_and_numbers(tmp_path):
    """Its inbox has AUTOINCREMENT: numbers go on after the highest it ever gave."""
    path = str(tmp_path / "chat.db")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL,
                            frame TEXT NOT NULL, offline INTEGER NOT NULL);
        CREATE INDEX inbox_by_recipient ON inbox (recipient, seq);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 1}', 1);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 2}', 1);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 3}', 1);
        DELETE FROM inbox WHERE seq = 3;
    """)
    old.commit()
    old.close()
    store = Store(path)
    assert store.waiting("bob") == [(1, {"n": 1}, True), (2, {"n": 2}, True)]
    assert keep(store, "bob", {"n": 4}, offline=True) == 4
    store.commit()
    store.close()


def test_the_first_reply_to_a_request_is_kept_and_a_retry_gets_it_back():
    store = Store(":memory:")
    assert store.first_reply("alice", "m1", {"type": "ok", "stored": False}, 1.0) is None
    assert store.first_reply("alice", "m1", {"type": "ok", "stored": True}, 2.0) == {
        "type": "ok", "stored": False}                      # the first, not replaced
    assert store.first_reply("bob", "m1", {"type": "ok"}, 2.0) is None    # per sender
    store.forget_replies_before(1.5)
    assert store.first_reply("alice", "m1", {"type": "ok", "stored": True}, 3.0) is None
    assert store.reply_for("bob", "m1") == {"type": "ok"}


def test_the_counts_of_what_waits_never_count_too_few_and_exact_ones_match_the_disk(tmp_path):
    """A delete is counted only at a recount (telling what it freed cost a RETURNING per ack),
    so the cheap counts may count too many, never too few; exact ones match the database."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    seqs = list(store.keep_for([("bob", True)] * 5 + [("carol", True)] * 2, {}, text="x" * 10))
    store.acknowledge("bob", seqs[2])
    store.commit()
    on_disk = sqlite3.connect(path)

    def really(name):
        return on_disk.execute("SELECT COUNT(*), SUM(LENGTH(frame)) FROM inbox "
                               "WHERE recipient = ?", (name,)).fetchone()
    assert really("bob") == (2, 20)
    assert store.box("bob") == (5, 50)                      # too many, cheaply
    assert store.box("bob", exact=True) == (2, 20)
    store.acknowledge("carol", seqs[-1])                    # held, not yet written
    assert store.count_total() == [2, 20]                   # the held delete counted too
    assert store.box("carol") == (0, 0)
    store.commit()
    assert really("carol") == (0, None)
    store.close()
    assert Store(path).box("bob") == (2, 20)                # counted afresh at open
