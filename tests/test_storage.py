"""Tests of storage.py: the credentials file and the SQLite store."""
import json
import os
import pathlib
import re
import shutil
import socket
import sqlite3
import time

import pytest

import log_index
import protocol
import senders
import storage
import store_files
from passwords import (OPEN, Checker, CredentialsError, hash_password, load_credentials,
                       open_accounts)
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


def test_a_name_alone_is_an_open_account_that_any_password_logs_in(tmp_path):
    accounts = load_credentials(write(tmp_path, "alice\nbob pw2\n"))
    assert accounts == {"alice": OPEN, "bob": "pw2"} and open_accounts(accounts) == {"alice"}
    checker = Checker(accounts)
    assert checker.check("alice", "anything") and checker.check("alice", "")
    assert checker.check("bob", "pw2") and not checker.check("bob", "anything")
    hashed = Checker({"alice": OPEN, "bob": hash_password("pw2")})
    assert hashed.check("alice", "x") and hashed.check("bob", "pw2") and not hashed.check("bob", "x")


def test_an_empty_file_has_no_accounts(tmp_path):
    assert load_credentials(write(tmp_path, "")) == {}


@pytest.mark.parametrize("line, count", [("alice hunter2 extra", 3),
                                         ("alice hunter2 extra more", 4)])
def test_a_malformed_line_is_named_without_its_password(tmp_path, line, count):
    path = write(tmp_path, f"bob ok\n\n{line}\n")
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path)
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and f"{count} fields" in message
    assert "hunter2" not in message and "extra" not in message


@pytest.mark.parametrize("line", ["root:$6$salt$hashhashhash:20228:0:99999:7:::",
                                  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin"])
def test_a_system_password_file_is_refused_without_quoting_it(tmp_path, line):
    """(a trial's --credentials /etc/shadow started, each line an open account whose name,
    hash and all, went to the log)"""
    with pytest.raises(CredentialsError) as caught:
        load_credentials(write(tmp_path, f"{line}\n"))
    message = str(caught.value)
    assert "line 1: a line of a system password file" in message and "$6$" not in message
    assert load_credentials(write(tmp_path, "a:b:c odd\n")) == {"a:b:c": "odd"}


def test_a_system_password_files_line_with_a_space_in_its_full_name_is_refused(tmp_path):
    """(the space split a re-attack's /etc/passwd line into a name and a "password")"""
    with pytest.raises(CredentialsError, match="line 1: a line of a system password file"):
        load_credentials(write(tmp_path, "alice:x:1000:1000:Alice Smith:/home/alice:/bin/sh\n"))


@pytest.mark.parametrize("joiner", [":", ",", ";"])
def test_a_name_ending_in_a_separator_before_its_password_is_refused(tmp_path, joiner):
    """(`alice: hunter2` made an account named "alice:", a re-attack's)"""
    with pytest.raises(CredentialsError, match=f"line 1: a name ending in '{joiner}' before"):
        load_credentials(write(tmp_path, f"alice{joiner} hunter2\n"))


@pytest.mark.parametrize("line, joiner", [("columbia:116bway", ":"), ("seas,summerisover", ","),
                                          ("google;hasglasses", ";")])
def test_a_name_and_password_joined_by_a_mistyped_separator_is_refused_unquoted(
        tmp_path, line, joiner):
    """(a trial's `name:password` file started with open accounts named with their passwords,
    which the log showed at every login)"""
    with pytest.raises(CredentialsError) as caught:
        load_credentials(write(tmp_path, f"alice ok\n{line}\n"))
    message = str(caught.value)
    assert f"line 2: a name and a password joined by {joiner!r}" in message
    assert line.split(joiner)[1] not in message
    # a name with such a character and a password of its own is one as before
    assert load_credentials(write(tmp_path, f"{line} pw\n")) == {line: "pw"}


def test_a_pem_file_given_as_the_accounts_file_is_refused(tmp_path):
    """(a trial's --credentials cert.pem started with 17 open accounts named after its lines)"""
    path = write(tmp_path, "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n")
    with pytest.raises(CredentialsError, match="line 1: a PEM file's line"):
        load_credentials(path)


def test_a_duplicate_user_is_named_with_its_line(tmp_path):
    path = write(tmp_path, "alice one\nbob two\nalice secret3\n")
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path)
    message = str(caught.value)
    assert "line 3" in message and "'alice'" in message and "secret3" not in message


def test_a_file_that_is_not_utf8_is_a_credentials_error_naming_the_line(tmp_path):
    path = write(tmp_path, b"bob ok\n# caf\xc3\xa9\nalice \xff\xfe\n")
    with pytest.raises(CredentialsError, match="line 3: not valid UTF-8"):
        load_credentials(path)


# --- the store ---

def keep(store, recipients, frame):
    """Keep one message for `recipients` (a name or a list) -> its number."""
    names = [recipients] if isinstance(recipients, str) else recipients
    return store.keep(names, protocol.line_head(frame))[0]


def frames(store, recipient, after=0):
    """What waits for `recipient`, decoded, without the numbers the store added."""
    found = []
    for seq, line in store.waiting(recipient, after):
        frame = json.loads(line)
        assert frame.pop("seq") == seq
        found.append(frame)
    return found


def take(store, recipient):
    """What waits for `recipient`, acknowledged at once -> the frames."""
    rows = store.waiting(recipient)
    if rows:
        store.acknowledge(recipient, rows[-1][0])
    return [{k: v for k, v in json.loads(line).items() if k != "seq"} for _, line in rows]


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


def test_an_acknowledgement_is_undone_with_its_transaction(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    keep(store, "bob", {"n": 1})
    store.commit()
    assert take(store, "bob") == [{"n": 1}]
    store.close()  # crashed before the pass committed: the frame must still be there
    reopened = Store(path)
    assert reopened.count_waiting("bob") == 1
    reopened.close()


def test_a_message_for_many_is_stored_once_with_one_number_and_one_line(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    before = keep(store, "carol", {"n": 0})
    seq, line = store.keep(["alice", "bob", "carol"], protocol.line_head({"n": 1}))
    assert seq == before + 1 and line == b'{"n":1,"seq":%d}\n' % seq
    assert store.waiting("bob") == [(seq, line)]
    assert store.waiting("carol") == [(before, b'{"n":0,"seq":%d}\n' % before), (seq, line)]
    assert store.total == [2, len(line) * 2]         # (both lines are as long)
    store.commit()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*), SUM(LENGTH(lines)) FROM log").fetchone() == (
            1, store.total[1])                          # one record for the pass, each line once
    assert store.count_all_waiting() == 4               # each recipient's delivery counts
    store.close()
    reopened = Store(path)
    assert reopened.waiting("alice") == [(seq, line)] and reopened.count_all_waiting() == 4


def test_a_number_is_never_given_twice_even_after_acks_and_a_restart(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    seqs = [keep(store, "bob", {"n": 1}), keep(store, "bob", {"n": 2})]
    store.acknowledge("bob", seqs[-1])          # nothing waits any more
    store.commit()
    store.close()
    reopened = Store(path)
    assert keep(reopened, "bob", {"n": 3}) == seqs[-1] + 1
    reopened.close()


def test_a_pass_is_one_record_seen_by_the_store_at_once_and_by_others_after_commit(tmp_path):
    path = str(tmp_path / "chat.db")
    store = Store(path)
    keep(store, ["bob", "carol"], {"n": 1})
    keep(store, "bob", {"n": 2})
    assert frames(store, "bob") == [{"n": 1}, {"n": 2}]
    other = sqlite3.connect(path)
    count = "SELECT COUNT(*) FROM log"
    assert other.execute(count).fetchone() == (0,)      # nothing committed yet
    store.commit()
    assert other.execute(count).fetchone() == (1,)      # the pass's messages: one record
    keep(store, "dave", {"n": 3})
    store.commit()
    assert other.execute(count).fetchone() == (2,)
    other.close()
    store.close()


def test_a_record_goes_once_every_recipient_has_acknowledged_all_of_it(tmp_path):
    """An acknowledgement moves a cursor and costs no disk sync of its own: a commit with
    nothing else to write leaves it held (a crash then sends those messages again; the client
    knows their numbers). It goes with the next commit that writes anything, or with
    commit(acks_too=True), and takes the records every cursor has passed with it."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    first = keep(store, ["bob", "carol"], {"n": 1})
    second = keep(store, "bob", {"n": 2})
    store.commit()
    other = sqlite3.connect(path)
    records = "SELECT COUNT(*) FROM log"
    cursors = "SELECT user, upto FROM cursors ORDER BY user"
    store.acknowledge("bob", second)
    store.acknowledge("bob", first)             # an older ack changes nothing
    store.commit()
    assert other.execute(cursors).fetchall() == []      # held: no transaction, no sync
    assert store.count_waiting("bob") == 0              # but the store itself knows at once
    store.add_block("dave", "erin")                     # a durable write: the cursor goes too
    store.commit()
    assert other.execute(cursors).fetchall() == [("bob", second)]
    assert other.execute(records).fetchone() == (1,)    # carol has not acknowledged it
    store.acknowledge("carol", first)
    store.commit(acks_too=True)                         # at shutdown
    assert other.execute(records).fetchone() == (0,) and store.total == [0, 0]
    other.close()
    store.close()
    assert Store(path).count_all_waiting() == 0


def test_a_mostly_acknowledged_record_is_rewritten_with_what_still_waits(tmp_path):
    """One message that waits a week keeps only itself on the disk, not its whole pass."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    seqs = [keep(store, "bob", {"n": n}) for n in range(log_index.REWRITE_MIN * 2)]
    waits = keep(store, "carol", {"n": "for carol"})
    store.commit()
    full_size = store.total[1]
    store.acknowledge("bob", seqs[-1])
    store.commit(acks_too=True)
    assert store.total == [1, len(store.waiting("carol")[0][1])] and store.total[1] < full_size
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT LENGTH(lines) FROM log").fetchall() == [(store.total[1],)]
    store.close()
    again = Store(path)
    assert again.waiting("carol") == [(waits, b'{"n":"for carol","seq":%d}\n' % waits)]
    assert again.waiting("bob") == [] and again.total == [1, store.total[1]]


def test_messages_for_the_same_recipients_name_them_once_on_the_disk(tmp_path):
    """A run of broadcasts names its recipients once in its record; a rewrite that drops the
    first of them still names them; records written the old way still load."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    everyone = ["bob", "carol"]
    run = [keep(store, everyone, {"n": n}) for n in range(log_index.REWRITE_MIN * 2)]
    alone = keep(store, ["carol"], {"n": "alone"})
    same = keep(store, ["carol"], {"n": "same names, another list"})
    store.commit()
    with sqlite3.connect(path) as raw:
        [(names,)] = raw.execute("SELECT recipients FROM log").fetchall()
    assert json.loads(names) == ([[run[0], everyone]] + [[seq] for seq in run[1:]]
                                 + [[alone, ["carol"]], [same]])
    store.acknowledge("carol", same)
    store.acknowledge("bob", run[-2])           # the last of the run still waits for bob
    store.commit(acks_too=True)
    with sqlite3.connect(path) as raw:
        [(names,)] = raw.execute("SELECT recipients FROM log").fetchall()
        assert json.loads(names) == [[run[-1], everyone]]
        # a record as written before: every message with its names
        raw.execute("INSERT INTO log (first_seq, recipients, lines) VALUES (?, ?, ?)",
                    (same + 1, json.dumps([[same + 1, ["carol"]], [same + 2, ["carol"]]]),
                     b'{"n":1,"seq":%d}\n{"n":2,"seq":%d}\n' % (same + 1, same + 2)))
    store.close()
    again = Store(path)
    assert [seq for seq, _ in again.waiting("bob")] == [run[-1]]
    assert [seq for seq, _ in again.waiting("carol")] == [same + 1, same + 2]
    assert again.head == same + 2
    again.close()


def test_reading_back_from_the_disk_gives_the_same_lines_as_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "RECORDS_CACHED", 1)
    path = str(tmp_path / "chat.db")
    store = Store(path)
    kept = []
    for n in range(5):
        kept += [(keep(store, "bob", {"n": n, "k": k}), n) for k in range(3)]
        store.commit()
    lines = store.waiting("bob")
    assert [seq for seq, _ in lines] == [seq for seq, _ in kept]
    assert [json.loads(line)["n"] for _, line in lines] == [n for _, n in kept]
    assert store.waiting("bob", after=kept[4][0], limit=2) == lines[5:7]
    store.close()
    assert Store(path).waiting("bob") == lines


@pytest.mark.parametrize("sync, level", [("full", 2), ("normal", 1)])
def test_a_file_store_syncs_each_commit_unless_told_normal(tmp_path, sync, level):
    store = Store(str(tmp_path / "chat.db"), sync=sync) if sync != "full" else Store(
        str(tmp_path / "chat.db"))
    assert store._db.execute("PRAGMA synchronous").fetchone() == (level,)
    store.close()
    with pytest.raises(ValueError, match="sync must be"):
        Store(":memory:", sync="off")


def test_a_data_directory_from_before_the_log_keeps_its_messages_and_numbers(tmp_path):
    """Its inbox had a row per delivery (with AUTOINCREMENT) and a table of replies: the rows
    become one record, their numbers kept; numbers go on after the highest ever given."""
    path = str(tmp_path / "chat.db")
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL,
                            frame TEXT NOT NULL, offline INTEGER NOT NULL);
        CREATE INDEX inbox_by_recipient ON inbox (recipient, seq);
        CREATE TABLE replies (sender TEXT, mid TEXT, reply TEXT, at REAL);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 1}', 1);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('carol', '{"n": 2}', 0);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 3}', 1);
        INSERT INTO inbox (recipient, frame, offline) VALUES ('bob', '{"n": 4}', 1);
        DELETE FROM inbox WHERE seq = 4;
    """)
    old.commit()
    old.close()
    store = Store(path)
    assert [json.loads(line) for _, line in store.waiting("bob")] == [
        {"n": 1, "seq": 1, "offline": True}, {"n": 3, "seq": 3, "offline": True}]
    assert store.waiting("carol") == [(2, b'{"n":2,"seq":2}\n')]
    assert keep(store, "bob", {"n": 5}) == 5
    store.commit()
    store.close()
    with sqlite3.connect(path) as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert not {"inbox", "replies"} & tables
    assert len(Store(path).waiting("bob")) == 3


def test_a_senders_counters_survive_a_restart_and_old_client_ids_are_forgotten(tmp_path):
    """The store writes senders' counters (senders.py) with the messages they answer."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    store.senders.taken("alice", "c1", 1, {"type": "ok", "stored": False}, 1.0)
    store.senders.taken("alice", "c1", 3, {"type": "ok", "stored": True}, 2.0)
    store.senders.taken("alice", "old", 7, {"type": "ok"}, 0.5)
    store.senders.taken("bob", "c1", 1, {"type": "ok"}, 2.0)
    store.commit()
    store.close()
    store = Store(path)
    assert [store.senders.seen("alice", "c1", n) for n in (1, 2, 3, 4)] == [
        senders.TAKEN, senders.NEW, senders.LAST, senders.NEW]
    assert store.senders.reply_to_last("alice", "c1") == {"type": "ok", "stored": True}
    assert store.senders.seen("bob", "c1", 1) is senders.LAST
    store.senders.forget_before("alice", 1.0)
    store.commit()
    store.close()
    store = Store(path)
    assert store.senders.seen("alice", "old", 7) is senders.NEW
    assert store.senders.seen("alice", "c1", 3) is senders.LAST


def test_with_a_clock_cursors_and_compaction_go_at_most_once_a_second(tmp_path):
    """A commit that writes only its record is the cheapest: cursors, deletes and the counter
    of numbers ride along at most every COMPACT_S. A crash between forgets only acknowledgements
    (those messages come again; clients drop them by number), never a number or a message."""
    from timers import VirtualClock
    clock = VirtualClock()
    path = str(tmp_path / "chat.db")
    store = Store(path, clock)
    first = keep(store, "bob", {"n": 1})
    store.commit()                                      # the first commit compacts
    other = sqlite3.connect(path)
    on_disk = lambda: (other.execute("SELECT COUNT(*) FROM log").fetchone()[0],
                       other.execute("SELECT upto FROM cursors").fetchall())
    store.acknowledge("bob", first)
    second = keep(store, "bob", {"n": 2})
    clock.advance(storage.COMPACT_S / 2)
    store.commit()
    assert on_disk() == (2, [])                         # the record only
    store.close()                                       # a crash here
    again = Store(path, clock)
    assert [seq for seq, _ in again.waiting("bob")] == [first, second]   # shown again, by number
    assert keep(again, "bob", {"n": 3}) == second + 1   # no number given twice
    again.acknowledge("bob", second)
    clock.advance(storage.COMPACT_S)
    again.commit()
    assert on_disk() == (1, [(second,)])                # compacted: the first two records gone
    other.close()


def test_a_record_every_cursor_has_passed_is_deleted_at_open(tmp_path):
    """However it came to be left (its delete lost, say), a record nobody waits for is not
    loaded, not counted, and deleted when the store opens."""
    path = str(tmp_path / "chat.db")
    store = Store(path)
    passed = keep(store, "bob", {"n": 1})
    store.commit()
    waits = keep(store, "bob", {"n": 2})
    store.commit()
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO cursors (user, upto) VALUES ('bob', ?)", (passed,))
    again = Store(path)
    assert [seq for seq, _ in again.waiting("bob")] == [waits]
    assert again.total[0] == 1 and again.count_all_waiting() == 1
    again.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT first_seq FROM log").fetchall() == [(waits,)]


def test_room_for_one_recipient_is_takes_then_crowded():
    """A direct message asks the index once (room_for_one) what takes and crowded answer
    for one recipient: the same answer for every fill of the store and of the box, at and
    around each bound."""
    index = log_index.LogIndex()
    seq = 0
    for step in range(40):
        seq += 1
        index.add(seq, ["bob"] if step % 3 else ["bob", "carol"], b"x" * (10 + step % 7))
        for size in (0, 9, 10, 11, 500):
            for messages_max in (index.deliveries, index.deliveries + 1, index.deliveries + 2):
                for bytes_max in (index.total[1] + size - 1, index.total[1] + size):
                    for name in ("bob", "carol", "dave"):
                        for box_messages in (1, step, step + 1, 100):
                            for box_bytes in (size, index.box(name)[1] + size,
                                              index.box(name)[1] + size - 1, 10**6):
                                expected = (
                                    "store" if not index.takes(1, size, messages_max, bytes_max)
                                    else "box" if index.crowded([name], box_messages,
                                                                box_bytes - size)
                                    else None)
                                assert index.room_for_one(name, size, messages_max, bytes_max,
                                                          box_messages, box_bytes) == expected


def test_room_for_one_says_crowded_when_a_share_waits_already():
    """(shares.py: past it, what each sender leaves the recipient counts)"""
    index = log_index.LogIndex()
    for seq in range(1, 4):
        index.add(seq, ["bob"], b"x" * 10)
    room = lambda crowd, crowd_bytes=10**6: index.room_for_one("bob", 10, 100, 10**6, 100,
                                                                10**6, crowd, crowd_bytes)
    assert [room(4), room(3), room(2)] == [None, "crowded", "crowded"]
    assert room(4, 30) == "crowded" and room(4, 31) is None         # 30 bytes wait
    assert index.room_for_one("carol", 10, 100, 10**6, 100, 10**6, 1, 1) is None   # no box
    assert index.room_for_one("bob", 10, 100, 10**6, 3, 10**6, 1, 1) == "box"      # full first


def test_an_exclusive_store_keeps_every_other_opener_out_until_it_closes(tmp_path):
    """The server's store: no second server (nor anything else) reads or writes its file
    while it runs; one that tries is told so once its wait for the lock is over (none here)."""
    path = str(tmp_path / "chat.db")
    store = Store(path, exclusive=True)
    keep(store, "bob", {"n": 1})
    store.commit()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        Store(path, exclusive=True, lock_wait_s=0)
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("SELECT COUNT(*) FROM log").fetchall()
    other.close()
    assert not pathlib.Path(path + "-shm").exists()     # its WAL index is in its memory
    store.close()
    again = Store(path, exclusive=True)
    assert frames(again, "bob") == [{"n": 1}]
    again.close()


def test_a_store_held_by_another_server_is_said_locked_not_another_stores_log(tmp_path):
    """A trial's second server, on a store restarted once (its identity in the file) with
    commits in its log, was told the live log was another store's, or damaged."""
    path = str(tmp_path / "chat.db")
    Store(path, exclusive=True).close()
    store = Store(path, exclusive=True)
    keep(store, "bob", {"n": 1})
    store.commit()
    assert os.path.getsize(path + "-wal") > 0
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        Store(path, exclusive=True, lock_wait_s=0)
    store.close()
    again = Store(path, exclusive=True)
    assert frames(again, "bob") == [{"n": 1}]
    again.close()


@pytest.mark.parametrize("trouble", ["unable to open database file", "database or disk is full"])
def test_a_log_that_cannot_be_looked_at_now_is_not_called_another_stores(tmp_path,
                                                                          monkeypatch, trouble):
    """A trial's start after a crash, on a full disk or in a read-only directory, where the
    look at the file with its log could not make the log's index: told the log was another
    store's, the operator moved it away as advised, and 8 acknowledged messages were lost."""
    path = str(tmp_path / "chat.db")
    Store(path, exclusive=True).close()
    store = Store(path, exclusive=True)
    keep(store, "bob", {"n": 1})
    store.commit()
    shutil.copy(path, path + ".crashed")               # as a kill -9 leaves them
    shutil.copy(path + "-wal", path + ".crashed-wal")
    store.close()
    os.replace(path + ".crashed", path)
    os.replace(path + ".crashed-wal", path + "-wal")
    real_connect = sqlite3.connect

    def cannot_look(where, *args, **options):
        if "mode=ro" in str(where):             # (the look with the log, read-only)
            raise sqlite3.OperationalError(trouble)
        return real_connect(where, *args, **options)
    monkeypatch.setattr(sqlite3, "connect", cannot_look)
    again = Store(path, exclusive=True)                 # (its open says why, if it cannot)
    assert frames(again, "bob") == [{"n": 1}]
    again.close()


def test_opening_waits_a_while_for_the_lock_a_stopping_server_still_holds(monkeypatch,
                                                                          tmp_path):
    # a server restarted at once (a supervisor, a conformance suite adding an account) finds
    # the last one still closing its store: it waits for it, where it once gave up at once
    # in steps a Ctrl-C can end (waited inside SQLite, an operator's took 5 s to)
    waits = []
    real_connect = sqlite3.connect

    def connect(path, timeout=5.0, **options):
        waits.append(timeout)
        if len(waits) <= 3:
            raise sqlite3.OperationalError("database is locked")
        return real_connect(path, timeout=timeout, **options)
    monkeypatch.setattr(sqlite3, "connect", connect)
    Store(str(tmp_path / "chat.db"), exclusive=True).close()
    assert waits == [storage.LOCK_POLL_S] * 4 and storage.LOCK_WAIT_S >= 2.0
    waits.clear()

    def held_for_good(path, timeout=5.0, **options):
        waits.append(timeout)
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(sqlite3, "connect", held_for_good)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        Store(str(tmp_path / "other.db"), exclusive=True, lock_wait_s=0.2)
    assert time.monotonic() - started >= 0.2 and len(waits) > 1    # (then it gives up)


def test_the_server_opens_its_store_exclusive_and_stops_at_its_start_if_it_cannot(
        tmp_path, capsys, monkeypatch):
    """server.py's store is exclusive (a second server on the same data directory is kept
    out); one that cannot open its store ends at once with a status of 1."""
    import server
    credentials = tmp_path / "credential.txt"
    credentials.write_text("alice secret\n")
    opened = []

    def in_use(path, *args, **options):
        opened.append(options.get("exclusive"))
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(server, "Store", in_use)
    status = server.main(["0", "--host", "127.0.0.1", "--credentials", str(credentials),
                          "--data-dir", str(tmp_path / "data")])
    assert status == 1 and opened == [True]
    said = capsys.readouterr().err
    assert "cannot open the data directory" in said and "another server is using it" in said


def _wiped_under(tmp_path):
    """A store that committed "before" for bob, its data directory then wiped -> (store, path)."""
    import shutil
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path), exclusive=True)
    keep(store, "bob", {"type": "message", "text": "before"})
    store.commit()
    shutil.rmtree(path.parent)
    return store, path


def _texts_after_restart(store, path):
    """Close `store`, open its path again -> bob's texts there."""
    store.close()
    again = Store(str(path), exclusive=True)
    texts = [frame["text"] for frame in frames(again, "bob")]
    again.close()
    return texts


def test_a_store_whose_file_is_deleted_writes_it_again_at_the_next_commit(tmp_path):
    """(a data directory wiped while the server runs: the commits since went to a file no
    restart would find)"""
    store, path = _wiped_under(tmp_path)
    keep(store, "bob", {"type": "message", "text": "after"})
    store.commit()
    assert "written again" in store.notice and path.exists()
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()
    identity = store.identity
    store.close()
    again = Store(str(path), exclusive=True)
    assert [frame["text"] for frame in frames(again, "bob")] == ["before", "after", "later"]
    assert again.identity == identity
    again.close()


def test_a_rewritten_file_that_cannot_be_opened_yet_is_tried_again_at_each_commit(
        tmp_path, monkeypatch):
    """Every commit after failed with "Cannot operate on a closed database", for good."""
    store, path = _wiped_under(tmp_path)
    open_db = Store._open_db
    monkeypatch.setattr(Store, "_open_db", lambda self: (_ for _ in ()).throw(
        OSError(24, "Too many open files")))
    keep(store, "bob", {"type": "message", "text": "after"})
    with pytest.raises(storage.StoreUnavailable, match="cannot be opened yet"):
        store.commit()
    keep(store, "bob", {"type": "message", "text": "meanwhile"})
    with pytest.raises(storage.StoreUnavailable, match="tried again: .*Too many open files"):
        store.commit()
    monkeypatch.setattr(Store, "_open_db", open_db)
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()
    assert store.failing is None and "open again" in store.notice
    assert [frame["text"] for frame in frames(store, "bob")] == [
        "before", "after", "meanwhile", "later"]
    assert _texts_after_restart(store, path) == ["before", "after", "meanwhile", "later"]


def test_a_rewritten_file_not_yet_put_in_place_is_put_there_at_the_next_commit(
        tmp_path, monkeypatch):
    store, path = _wiped_under(tmp_path)
    rename = os.rename

    def failing_once(src, dst):
        if str(src).endswith(".new") and not failing_once.failed:
            failing_once.failed = True
            raise OSError(28, "No space left on device")
        rename(src, dst)
    failing_once.failed = False
    monkeypatch.setattr(storage.os, "rename", failing_once)
    keep(store, "bob", {"type": "message", "text": "after"})
    with pytest.raises(storage.StoreUnavailable, match="cannot be opened yet"):
        store.commit()
    assert not path.exists() and path.with_name("chat.sqlite3.new").exists()
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()
    assert store.failing is None and path.exists()
    assert _texts_after_restart(store, path) == ["before", "after", "later"]


def _log_deleted(tmp_path):
    """A store that committed "before" and "then" for bob (the first in its file, the second
    in its log), its log then deleted, as a wiped directory's first file -> (store, path)."""
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path), exclusive=True)
    keep(store, "bob", {"type": "message", "text": "before"})
    store.commit()
    keep(store, "bob", {"type": "message", "text": "then"})
    store.commit()
    os.remove(f"{path}-wal")
    return store, path


def test_a_directory_wiped_between_a_deleted_logs_check_and_the_reopen_loses_nothing(
        tmp_path, monkeypatch):
    """(a trial's rm -rf under load took the log, then the file as the store reopened it:
    the connection closed, nothing held what it had committed, and a restart started empty)"""
    import shutil
    store, path = _log_deleted(tmp_path)
    close_db = Store._close_db

    def wiped_as_it_closes(self, *keep):
        close_db(self, *keep)
        shutil.rmtree(path.parent)
    monkeypatch.setattr(Store, "_close_db", wiped_as_it_closes)
    keep(store, "bob", {"type": "message", "text": "after"})
    with pytest.raises(storage.StoreUnavailable, match="log was deleted"):
        store.commit()
    monkeypatch.setattr(Store, "_close_db", close_db)
    assert store.homeless                   # (a stop would copy it elsewhere: rescue)
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()                          # written back from what it held
    assert store.failing is None and not store.homeless and path.exists()
    assert _texts_after_restart(store, path) == ["before", "then", "after", "later"]


def test_a_copy_written_back_whose_open_fails_is_opened_at_a_later_commit(
        tmp_path, monkeypatch):
    """(a review's: the copy written back at the path was refused as another file's, at every
    commit until a restart)"""
    import shutil
    store, path = _log_deleted(tmp_path)
    close_db, open_db = Store._close_db, Store._open_db

    def wiped_as_it_closes(self, *keep):
        close_db(self, *keep)
        shutil.rmtree(path.parent)
    monkeypatch.setattr(Store, "_close_db", wiped_as_it_closes)
    keep(store, "bob", {"type": "message", "text": "after"})
    with pytest.raises(storage.StoreUnavailable):
        store.commit()
    monkeypatch.setattr(Store, "_close_db", close_db)
    fails = [OSError(24, "Too many open files")]

    def open_fails_once(self):
        if fails:
            raise fails.pop()
        return open_db(self)
    monkeypatch.setattr(Store, "_open_db", open_fails_once)
    keep(store, "bob", {"type": "message", "text": "later"})
    with pytest.raises(storage.StoreUnavailable, match="Too many open files"):
        store.commit()                      # written back, not opened
    assert path.exists() and not store.homeless     # (its own file: no rescue at a stop)
    store.commit()
    assert store.failing is None
    assert _texts_after_restart(store, path) == ["before", "then", "after", "later"]


def test_a_reopen_that_fails_leaves_the_file_at_its_path_for_a_restart_not_a_rescue(
        tmp_path, monkeypatch):
    """(a review's: the store's own file at its path, unopened, was taken for lost: the stop
    wrote a rescued copy beside it, said the store was not there, and the start refused)"""
    store, path = _log_deleted(tmp_path)
    monkeypatch.setattr(Store, "_open_db", lambda self: (_ for _ in ()).throw(
        OSError(24, "Too many open files")))
    keep(store, "bob", {"type": "message", "text": "after"})
    for _ in range(2):
        with pytest.raises(storage.StoreUnavailable):
            store.commit()
    assert not store.homeless and store.rescue() is None
    store.close()
    monkeypatch.undo()
    again = Store(str(path), exclusive=True)
    # ("after" was committed before the log's loss was found; its reply said unavailable, and
    # its sender's retry is answered from the counter committed with it)
    assert [frame["text"] for frame in frames(again, "bob")] == ["before", "then", "after"]
    again.close()


def test_a_deleted_log_whose_file_went_too_is_written_again_from_the_open_store(
        tmp_path, monkeypatch):
    store, path = _log_deleted(tmp_path)
    find_log = Store._find_log

    def file_gone_meanwhile(self):
        os.remove(path)
        find_log(self)
    monkeypatch.setattr(Store, "_find_log", file_gone_meanwhile)
    keep(store, "bob", {"type": "message", "text": "after"})
    store.commit()
    monkeypatch.setattr(Store, "_find_log", find_log)
    assert "written again" in store.notice
    assert _texts_after_restart(store, path) == ["before", "then", "after"]


def test_a_rewritten_copy_deleted_before_it_is_put_in_place_is_written_from_the_last_copy(
        tmp_path, monkeypatch):
    import shutil
    store, path = _wiped_under(tmp_path)
    close_db = Store._close_db

    def wiped_as_it_closes(self, *keep):
        close_db(self, *keep)
        shutil.rmtree(path.parent)          # (.new with it)
    monkeypatch.setattr(Store, "_close_db", wiped_as_it_closes)
    keep(store, "bob", {"type": "message", "text": "after"})
    with pytest.raises(storage.StoreUnavailable):
        store.commit()
    monkeypatch.setattr(Store, "_close_db", close_db)
    path.parent.mkdir()
    path.parent.rmdir()
    path.parent.write_bytes(b"")            # a file where its directory was: none can be made
    keep(store, "bob", {"type": "message", "text": "meanwhile"})
    with pytest.raises(storage.StoreUnavailable):
        store.commit()
    copy = store.rescue()                   # (at a stop: from the last copy, not a connection)
    assert copy is not None and copy.startswith(str(tmp_path))
    rescued = Store(copy)
    assert [frame["text"] for frame in frames(rescued, "bob")] == ["before", "after"]
    rescued.close()
    os.remove(copy)
    path.parent.unlink()
    store.commit()
    assert store.failing is None
    assert _texts_after_restart(store, path) == ["before", "after", "meanwhile"]


CRASH_AFTER = """
import os, sys
sys.path.insert(0, {root!r})
import protocol
from storage import Store
path, what = sys.argv[1], sys.argv[2]
store = Store(path, exclusive=True, sync="full")
if what == "log before any commit":     # (made as the store was, never opened here yet)
    os.remove(path + "-wal")
for n in range(300):        # records in the log, and some in the file (SQLite's checkpoints)
    store.keep(["bob"], protocol.line_head({{"type": "message", "text": f"m{{n}}"}}))
    store.commit()
if what == "file":
    os.remove(path)
elif what == "log":
    os.remove(path + "-wal")
elif what == "file moved away":         # (a hard link's other name kept it: not deleted)
    os.rename(path, path + ".elsewhere")
elif what == "log moved away":
    os.rename(path + "-wal", path + "-wal.elsewhere")
for n in range(300, 600):
    store.keep(["bob"], protocol.line_head({{"type": "message", "text": f"m{{n}}"}}))
    store.commit()          # each one a yes: kept, whatever happens next
print(store.notice, flush=True)
os._exit(0)                 # a crash: nothing closed, nothing copied at a close
"""


@pytest.mark.parametrize("what, said", [
    ("file", "the store's file was deleted, or moved, while the server ran: written again"),
    ("log", "the store's write-ahead log was deleted while the server ran: what it held was "
            "copied into"),
    ("file moved away", "the store's file was deleted, or moved, while the server ran: written "
                        "again"),
    ("log moved away", "the store's write-ahead log was deleted while the server ran"),
    ("log before any commit", "the store's write-ahead log was deleted while the server ran"),
])
def test_a_store_whose_file_or_log_alone_is_deleted_keeps_every_commit_through_a_crash(
        tmp_path, what, said):
    """The file deleted with its log left beside it: the store written again read the old
    log into the new file, which came out corrupt; the log deleted: nothing noticed, and a
    crash lost the commits it held; either moved away (a hard link, a rename), or the log
    deleted before the store's first commit: nothing noticed either (trials', each)."""
    import subprocess
    import sys
    path = tmp_path / "chat.sqlite3"
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER.format(root=root), str(path),
                           what], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(said)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    again = Store(str(path), exclusive=True)
    assert [frame["text"] for frame in frames(again, "bob")] == [f"m{n}" for n in range(600)]
    again.close()


def test_until_a_deleted_stores_file_can_be_written_again_every_commit_fails(tmp_path):
    import shutil
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "text": "before"})
    store.commit()
    shutil.rmtree(path.parent)
    path.parent.write_bytes(b"")            # a file where its directory was: none can be made
    keep(store, "bob", {"type": "message", "text": "after"})
    for _ in range(2):                      # (a commit with nothing new fails too)
        with pytest.raises(storage.StoreUnavailable, match="deleted while the server ran"):
            store.commit()
        assert store.failing is not None
    # (a directory up: its own directory is a file now; /tmp's copies are others')
    copies = [copy for copy in store_files.rescued_copies(str(path))
              if copy.startswith(str(tmp_path))]
    assert len(copies) == 1                 # made as the loss was found: once
    path.parent.unlink()
    store.commit()
    assert store.failing is None and f"its copy at {copies[0]} is removed" in store.notice
    assert not os.path.exists(copies[0])
    store.close()
    again = Store(str(path))
    assert [frame["text"] for frame in frames(again, "bob")] == ["before", "after"]
    again.close()


@pytest.mark.parametrize("how", ["a file where its directory was", "another store there"])
def test_a_homeless_store_is_rescued_to_a_copy_that_holds_everything_it_held(tmp_path, how):
    """(a trial's stop of a server whose directory was wiped, the file not written again,
    lost 238 messages answered ok: they went with the last handle of the deleted file)"""
    import shutil
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path))
    for text in ("one", "two"):
        keep(store, "bob", {"type": "message", "text": text})
        store.commit()
    assert not store.homeless and store.rescue() is None
    shutil.rmtree(path.parent)
    if how == "a file where its directory was":
        path.parent.write_bytes(b"")
    else:
        path.parent.mkdir()
        Store(str(path)).close()            # a second server's, at the path
    keep(store, "bob", {"type": "message", "text": "answered unavailable"})
    with pytest.raises(storage.StoreUnavailable):
        store.commit()
    assert store.homeless
    copy = store.rescue()
    assert copy is not None and os.path.basename(copy).startswith("chat.sqlite3.rescued-")
    store.close()
    rescued = Store(copy)
    # (the last went to the deleted file before its loss was seen: "unavailable" promises
    # nothing either way, and its sender's retry is known by its mid)
    assert [frame["text"] for frame in frames(rescued, "bob")] == [
        "one", "two", "answered unavailable"]
    rescued.close()
    # a start at the path is refused while the copy is about (the operator decides); another
    # store's is not (a digest of the path is in the copy's name)
    if path.parent.is_file():
        path.parent.unlink()
        path.parent.mkdir()
    else:
        for made in path.parent.glob("chat.sqlite3"):     # (the other server's, not the copy)
            made.unlink()
    with pytest.raises(sqlite3.DatabaseError, match="is a copy of the store at .* Move it"):
        Store(str(path))
    Store(str(tmp_path / "elsewhere.sqlite3")).close()
    os.remove(copy)
    Store(str(path)).close()


def test_a_rescued_copy_moved_in_with_a_log_beside_it_is_refused_untouched(tmp_path):
    """A trial replaced the file under a running server; the server left its own log at the
    path, and the copy moved in as the log said was read with it at the next start, damaged:
    175 messages lost. The stop now deletes that log (the copy holds what it held), and a
    start refuses a copy with any log beside it, reading nothing but the copy."""
    import shutil
    path = tmp_path / "chat.sqlite3"
    wal = tmp_path / "chat.sqlite3-wal"
    store = Store(str(path))
    for n in range(30):
        keep(store, "bob", {"type": "message", "text": f"kept {n}"})
        store.commit()
    assert wal.stat().st_size > 0
    shutil.copy(wal, tmp_path / "its-log")          # (what the stop left, before it did not)
    Store(str(tmp_path / "restored")).close()
    os.replace(tmp_path / "restored", path)         # another file renamed over it
    keep(store, "bob", {"type": "message", "text": "answered unavailable"})
    with pytest.raises(storage.StoreUnavailable):
        store.commit()
    copy = store.rescue()
    store.close()
    assert not wal.exists()                         # its own log went with it
    whole = sqlite3.connect(str(path))              # the file there is whole
    assert whole.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    whole.close()
    os.replace(copy, path)                          # the log line's advice ...
    shutil.copy(tmp_path / "its-log", wal)          # ... with a log left beside it
    before = path.read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="is a copy of a store, whole in itself"):
        Store(str(path))
    assert path.read_bytes() == before and wal.exists()     # nothing read into it
    os.remove(wal)
    store = Store(str(path))
    assert len(frames(store, "bob")) == 31
    store.commit()
    store.close()
    mark = sqlite3.connect(str(path)).execute(
        "SELECT value FROM meta WHERE name = 'rescued_from'").fetchall()
    assert mark == []                               # the store now: its logs are its own


def test_a_file_beside_another_stores_log_is_refused_untouched(tmp_path):
    """(a trial restored one store's file beside another's log, left by a kill -9: the start
    said nothing, and the 40 messages of both were gone)"""
    import shutil
    import subprocess
    import sys
    one, other = tmp_path / "one.sqlite3", tmp_path / "other.sqlite3"
    store = Store(str(one))
    keep(store, "bob", {"type": "message", "text": "one's"})
    store.commit()
    store.close()
    subprocess.run([sys.executable, "-c", f"""if 1:
        import os, sys
        sys.path.insert(0, {os.path.dirname(storage.__file__)!r})
        from storage import Store
        store = Store({str(other)!r})
        store.keep(["bob"], b'{{"type":"message","from":"a","text":"other\\'s"')
        store.commit()
        os._exit(0)     # as a kill -9: its log stays"""], check=True, timeout=30)
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    shutil.copy(one, path)
    shutil.copy(str(other) + "-wal", str(path) + "-wal")
    before = path.read_bytes(), pathlib.Path(str(path) + "-wal").read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="is not the log of the file .* nothing was "
                                                    "written"):
        Store(str(path))
    assert (path.read_bytes(), pathlib.Path(str(path) + "-wal").read_bytes()) == before
    assert not os.path.exists(str(path) + "-shm")
    shutil.copy(str(other) + "-wal", str(one) + "-wal")     # (its own log, after a crash:
    shutil.copy(other, one)                                 #  the two belong together)
    again = Store(str(one))
    assert [frame["text"] for frame in frames(again, "bob")] == ["other's"]
    again.close()


def _kept_store(tmp_path, count):
    """A store that took `count` messages for bob, a commit each (the log's size is seen at
    each commit) -> (store, path)."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path), exclusive=True)
    for n in range(count):
        keep(store, "bob", {"type": "message", "text": f"kept {n} " + "x" * 500})
        store.commit()
    return store, path


def _big_store(tmp_path):
    """A store whose file holds its messages (copied out of its log), as a busy one's does."""
    store, path = _kept_store(tmp_path, 300)
    assert store.checkpoint()
    return store, path


def test_a_store_whose_file_is_cut_short_under_it_says_so_and_never_yes_again(tmp_path):
    """`truncate -s 0 chat.sqlite3` under a running server: it said yes to 100 more
    messages, which no restart could read (a trial's, at 1,000)."""
    store, path = _big_store(tmp_path)
    keep(store, "bob", {"type": "message", "text": "seen whole"})
    store.commit()                          # (the file's size is seen at a commit)
    os.truncate(path, 0)
    keep(store, "bob", {"type": "message", "text": "after the cut"})
    for _ in range(2):                      # for good: no later commit says yes
        with pytest.raises(storage.StoreUnavailable, match="cut short .* restart the server"):
            store.commit()
    assert store.failing is not None
    store.close()


@pytest.mark.parametrize("to", [0, 0.5], ids=["emptied", "halved"])
def test_a_store_whose_log_is_cut_short_under_it_says_so_and_never_yes_again(tmp_path, to):
    """A trial emptied (or halved) the write-ahead log under a running server: it said yes to
    200 more messages, and a restart had lost all 300, or found the file malformed."""
    store, path = _kept_store(tmp_path, 20)
    wal = str(path) + "-wal"
    os.truncate(wal, int(os.path.getsize(wal) * to))
    keep(store, "bob", {"type": "message", "text": "after the cut"})
    for _ in range(2):                      # for good: no later commit says yes
        with pytest.raises(storage.StoreUnavailable,
                           match="write-ahead log was cut short .* restart the server"):
            store.commit()
    store.close()
    # a restart that goes on without the backup is the operator's choice, not a silent one
    # (a trial's restart went on, 246 acknowledged messages gone and not a word)
    with pytest.raises(sqlite3.DatabaseError, match="found this store damaged while it ran "
                       r"\(the store's write-ahead log was cut short.*delete .*-damaged"):
        Store(str(path), exclusive=True)
    os.remove(str(path) + "-damaged")
    Store(str(path), exclusive=True).close()


def test_a_damage_note_that_cannot_be_written_is_said(tmp_path):
    """(a trial's read-only directory took no note, and a restart went on without a word)"""
    store, path = _kept_store(tmp_path, 5)
    os.mkdir(str(path) + "-damaged")        # (as root, a read-only directory would not stop it)
    os.truncate(str(path) + "-wal", 0)
    keep(store, "bob", {"type": "message", "text": "after the cut"})
    with pytest.raises(storage.StoreUnavailable, match="note that would stop a restart from "
                       "using it could not be written .* do not restart the server"):
        store.commit()
    store.close()


def test_an_idle_store_finds_its_log_cut_short_at_its_look(tmp_path):
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path), exclusive=True)
    keep(store, "bob", {"type": "message", "text": "kept " + "x" * 5000})
    store.commit()
    os.truncate(str(path) + "-wal", 0)
    store.look_wanted = True
    with pytest.raises(storage.StoreUnavailable, match="write-ahead log was cut short"):
        store.commit()                      # nothing to write: it only looks
    keep(store, "bob", {"type": "message", "text": "after the cut"})
    with pytest.raises(storage.StoreUnavailable, match="write-ahead log was cut short"):
        store.commit()
    store.close()


def test_a_store_whose_log_is_checkpointed_by_itself_goes_on(tmp_path):
    """SQLite's own checkpoints reuse the log from its start, never shrinking it: no damage."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path), exclusive=True)
    for n in range(400):                    # past the automatic checkpoint's 1,000 pages
        keep(store, "bob", {"type": "message", "text": f"kept {n} " + "x" * 4000})
        store.commit()
    assert store.failing is None and store.count_waiting("bob") == 400
    store.close()


def test_a_store_found_corrupt_by_a_read_never_commits_again(tmp_path):
    """A trial's store, truncated, said "malformed" to a login's read, then yes to 20
    messages, committed to the log alone, none of which a restart could read."""
    store, path = _big_store(tmp_path)
    store._cached.clear()
    with open(path, "r+b") as damaged:
        damaged.seek(4096 * 3)
        damaged.write(b"\xff" * 4096 * 20)
    store._db.execute("PRAGMA cache_size=0")      # (what is read, comes from the file)
    with pytest.raises(storage.StoreUnavailable):
        store.waiting("bob")
    keep(store, "bob", {"type": "message", "text": "after the damage"})
    with pytest.raises(storage.StoreUnavailable, match="damaged .* restart the server"):
        store.commit()
    store.close()


def test_an_idle_store_looks_at_its_files_every_second(tmp_path):
    """Its data directory wiped while the server was idle, a kill -9 lost the five messages
    it held, in a deleted file: nothing wrote, so nothing looked (a trial's); and another's,
    holding no message, the block it had answered ok."""
    import shutil
    from timers import VirtualClock
    clock = VirtualClock()
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path), clock=clock, exclusive=True)
    assert store.wake_at() == storage.LOOK_EVERY_S  # (a second after it began)
    keep(store, "bob", {"type": "message", "text": "held"})
    store.add_block("alice", "carol")
    store.commit()
    shutil.rmtree(path.parent)
    store.commit()                                  # an idle pass: no look asked for
    assert not path.exists()
    store.look_wanted = True                        # (as the glue's timer at wake_at does)
    store.commit()
    assert path.exists() and "written again" in store.notice
    assert store.wake_at() == clock.now() + storage.LOOK_EVERY_S
    store.close()
    again = Store(str(path))
    assert [frame["text"] for frame in frames(again, "bob")] == ["held"]
    assert again.is_blocked("alice", "carol")
    again.close()
    assert Store(":memory:", clock=clock).wake_at() is None     # (no file: nothing to look at)


def test_a_store_whose_file_is_replaced_does_not_overwrite_the_new_one(tmp_path):
    """(a restore while the server runs, or a second server on the wiped directory: the store
    stays unavailable, and a restart takes the file that is there)"""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path), exclusive=True)
    keep(store, "bob", {"type": "message", "text": "mine"})
    store.commit()
    (tmp_path / "restored").write_bytes(b"a backup")
    (tmp_path / "restored").rename(path)
    keep(store, "bob", {"type": "message", "text": "more"})
    for _ in range(2):
        with pytest.raises(storage.StoreUnavailable, match="replaced while the server ran"):
            store.commit()
    assert path.read_bytes() == b"a backup"
    store.close()


def test_numbers_start_no_higher_than_half_the_highest_whatever_the_clock_says(tmp_path):
    """A wall clock centuries ahead at one start (in microseconds past 2**53) numbered every
    message beyond what JSON's numbers hold, acknowledgements refused for good (a trial's)."""
    path = str(tmp_path / "chat.sqlite3")
    store = Store(path, seq_floor=7_500_000_000 * 1_000_000)
    first = keep(store, "bob", {"type": "message", "text": "far ahead"})
    store.commit()
    store.close()
    assert first == storage.SEQ_FLOOR_MAX <= protocol.MAX_SEQ // 2
    again = Store(path, seq_floor=1_765_000_000 * 1_000_000)      # the clock set right
    assert keep(again, "bob", {"type": "message", "text": "next"}) == first + 1
    again.close()


def test_an_emptied_stores_file_is_refused_not_started_again_as_a_new_store(tmp_path):
    """`: > chat.sqlite3` before a start: SQLite would make a new store of it, and the
    messages it held were gone without a word (a trial's 120)."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "text": "kept"})
    store.commit()
    store.close()
    path.write_bytes(b"")
    with pytest.raises(sqlite3.DatabaseError, match="is empty .0 bytes.*another server may be "
                       "starting .* if none is, it was emptied.*move it away"):
        Store(str(path))
    os.utime(path, (0, 0))                              # long ago: no server starting
    with pytest.raises(sqlite3.DatabaseError, match="ever is: it was emptied.*move it away"):
        Store(str(path))
    assert path.read_bytes() == b""                     # left as it was, for the operator
    path.unlink()
    Store(str(path)).close()                            # no file: a new store, as always


def test_an_emptied_stores_file_with_its_log_beside_it_is_refused_too(tmp_path):
    """`truncate -s 0` under a running server, then a restart: a new, empty store began on the
    file and its log, the 900 messages answered ok before gone without a word (a trial's)."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path), exclusive=True)
    keep(store, "bob", {"type": "message", "text": "kept"})
    store.commit()
    os.truncate(path, 0)            # (the store left open, as by a kill -9: its log stays)
    assert (tmp_path / "chat.sqlite3-wal").stat().st_size > 0
    with pytest.raises(sqlite3.DatabaseError, match="is empty .0 bytes.*-wal beside it"):
        Store(str(path))
    store.close()


def test_a_new_store_that_could_not_be_made_leaves_no_empty_file_behind(tmp_path, monkeypatch):
    """Started on a full disk, a new store left an empty file, and every start after the
    space came back was refused: "it was emptied" (a trial's)."""
    path = tmp_path / "chat.sqlite3"

    def disk_full(self, db):
        raise sqlite3.OperationalError("database or disk is full")

    limit_pages = Store._limit_pages
    monkeypatch.setattr(Store, "_limit_pages", disk_full)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        Store(str(path))
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(Store, "_limit_pages", limit_pages)
    Store(str(path)).close()                        # the space back: a new store, as asked
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        monkeypatch.setattr(Store, "_limit_pages", disk_full)
        Store(str(path))                            # an existing store is never removed
    assert path.exists()


def test_a_store_killed_while_it_wrote_itself_again_is_opened_from_its_complete_copy(tmp_path):
    """Killed between closing the old connection and putting the copy in place (Store._rehome):
    no file at the path, the complete copy as .new, perhaps the old file's log; a restart
    began a new store without it (a trial's 148 messages)."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "text": "kept"})
    store.commit()
    identity = store.identity
    store.close()
    path.rename(tmp_path / "chat.sqlite3.new")
    (tmp_path / "chat.sqlite3-wal").write_bytes(b"the old file's log" * 100)
    again = Store(str(path))
    assert again.identity == identity
    assert [frame["text"] for frame in frames(again, "bob")] == ["kept"]
    again.close()
    assert not (tmp_path / "chat.sqlite3.new").exists()


def test_a_log_left_where_no_file_is_is_refused_not_read_into_a_new_store(tmp_path):
    """(killed before its copy was complete, or the file deleted while the server was
    stopped: a new store would take in the old file's log, and come out corrupt)"""
    path = tmp_path / "chat.sqlite3"
    (tmp_path / "chat.sqlite3-wal").write_bytes(b"a deleted file's log" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="is missing but its write-ahead log") as e:
        Store(str(path))
    assert not path.exists()
    # no copy is promised where none is (a trial's pointed at a .tmp never written)
    assert ".tmp" not in str(e.value) and "not the store" in str(e.value)
    for header_only in (b"", b"h" * 32):
        (tmp_path / "chat.sqlite3-wal").write_bytes(header_only)
        with pytest.raises(sqlite3.DatabaseError, match="It is empty: nothing in it can be"):
            Store(str(path))
    # a copy a server made as it lost its file is named first: the messages are there
    copy = tmp_path / (store_files.rescue_prefix(str(path)) + "20261207-190808-1")
    copy.write_bytes(b"a copy")
    with pytest.raises(sqlite3.DatabaseError, match=re.escape(str(copy))):
        Store(str(path))


def test_a_data_directory_that_is_a_file_is_said_to_be_one(tmp_path, capsys):
    """(`--data-dir /dev/null` said "[Errno 17] File exists")"""
    import server
    credentials = tmp_path / "credential.txt"
    credentials.write_text("alice secret\n")
    (tmp_path / "data").write_text("a file")
    status = server.main(["0", "--host", "127.0.0.1", "--credentials", str(credentials),
                          "--data-dir", str(tmp_path / "data")])
    assert status == 1
    assert capsys.readouterr().err.strip().endswith(f"{tmp_path / 'data'}: it is not a directory")


@pytest.mark.parametrize("taken", ["chat", "irc"])
def test_a_port_another_program_holds_ends_the_start_before_the_data_directory_is_made(
        tmp_path, capsys, taken):
    """(a trial's server, its port taken, left a new empty data directory behind)"""
    import server
    credentials = tmp_path / "credential.txt"
    credentials.write_text("alice secret\n")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = str(holder.getsockname()[1])
    ports = [port] if taken == "chat" else ["0", "--irc-port", port]
    try:
        status = server.main(ports + ["--host", "127.0.0.1", "--credentials", str(credentials),
                                      "--data-dir", str(tmp_path / "data")])
    finally:
        holder.close()
    said = capsys.readouterr().err
    assert status == 1 and not (tmp_path / "data").exists()
    where = f"127.0.0.1 port {port}" if taken == "chat" else f"IRC port {port}"
    assert f"cannot listen on {where}: Address already in use" in said


def test_a_connection_whose_setup_fails_lets_go_of_its_lock(tmp_path, monkeypatch):
    """Its exclusive lock kept, every later try to open the file waited out the lock, the
    server with it, for good (a trial's log deleted in a read-only directory)."""
    path = str(tmp_path / "chat.sqlite3")
    Store(path, exclusive=True).close()
    real = Store._limit_log

    def refused(store, pages, db=None):
        raise sqlite3.OperationalError("attempt to write a readonly database")
    monkeypatch.setattr(Store, "_limit_log", refused)
    with pytest.raises(sqlite3.OperationalError) as failed:   # (its frames kept, as a log's)
        Store(path, exclusive=True, lock_wait_s=0.1)
    monkeypatch.setattr(Store, "_limit_log", real)
    assert failed.traceback
    store = Store(path, exclusive=True, lock_wait_s=0.1)        # not "database is locked"
    store.close()


def test_a_store_in_a_directory_whose_name_is_not_utf8_opens(tmp_path):
    """(an operator's trial's start there ended in a traceback: the rescued copies' names are
    made from the store's path)"""
    where = os.fsdecode(os.fsencode(str(tmp_path)) + b"/d\xffx")
    os.mkdir(where)
    store = Store(os.path.join(where, "chat.sqlite3"))
    try:
        store.keep(["bob"], protocol.line_head({"text": "hi"}))
        store.commit()
        assert [seq for seq, _ in store.waiting("bob")] == [store.head]
    finally:
        store.close()


def test_ctrl_c_while_the_start_waits_for_another_servers_store_says_so_in_one_line(
        tmp_path, capsys, monkeypatch):
    """(an operator's trial's Ctrl-C during the wait for a locked store wrote a traceback)"""
    import server
    credentials = tmp_path / "credential.txt"
    credentials.write_text("alice secret\n")

    def interrupted(path, *args, **options):
        raise KeyboardInterrupt
    monkeypatch.setattr(server, "Store", interrupted)
    status = server.main(["0", "--host", "127.0.0.1", "--credentials", str(credentials),
                          "--data-dir", str(tmp_path / "data")])
    assert status == 130
    assert capsys.readouterr().err == "server.py: interrupted while starting\n"


def test_a_deleted_log_whose_copy_failed_after_a_commit_is_well_again_once_a_look_succeeds(
        tmp_path, monkeypatch):
    """The data directory read-only as the log was deleted: the copy into the file failed
    after a commit had succeeded, nothing was left to write, and the store, open again, stayed
    failing for good: every write and login refused until a restart (a trial's)."""
    path = tmp_path / "chat.sqlite3"
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "text": "before"})
    store.commit()
    open_db = Store._open_db
    monkeypatch.setattr(Store, "_open_db", lambda self: (_ for _ in ()).throw(
        sqlite3.OperationalError("attempt to write a readonly database")))
    os.remove(str(path) + "-wal")
    keep(store, "bob", {"type": "message", "text": "as it went"})
    with pytest.raises(storage.StoreUnavailable, match="log was deleted"):
        store.commit()                              # (its own commit succeeded first)
    assert store.failing is not None
    monkeypatch.setattr(Store, "_open_db", open_db)
    store.commit()                                  # nothing to write: the look says well
    assert store.failing is None and "open again" in store.notice
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()
    assert _texts_after_restart(store, path) == ["before", "as it went", "later"]


def test_a_directory_made_for_the_store_has_its_name_synced_into_its_parent(
        tmp_path, monkeypatch):
    """(a trial's strace: the data directory made, its files synced, its own name never: a
    power cut could take the whole directory with what had been answered ok)"""
    synced = []
    monkeypatch.setattr(store_files, "sync_path", synced.append)
    store_files.make_directory(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()
    assert sorted(synced) == [str(tmp_path), str(tmp_path / "a")]
    synced.clear()
    store_files.make_directory(str(tmp_path / "a" / "b"))          # there: nothing to sync
    assert synced == []


def test_its_own_file_moved_back_while_it_could_not_be_written_again_is_home_again(
        tmp_path, monkeypatch):
    """The data directory read-only, the store's file moved away and back: it was taken for
    another server's file, every write refused until a restart, which refused the copy left
    beside it (a re-attack's)."""
    path = tmp_path / "data" / "chat.sqlite3"
    path.parent.mkdir()
    store = Store(str(path))
    keep(store, "bob", {"type": "message", "text": "before"})
    store.commit()
    make_directory = store_files.make_directory
    monkeypatch.setattr(store_files, "make_directory", lambda path: (_ for _ in ()).throw(
        OSError(30, "Read-only file system")))
    away = tmp_path / "away.sqlite3"
    os.rename(path, away)
    keep(store, "bob", {"type": "message", "text": "while away"})
    with pytest.raises(storage.StoreUnavailable, match="cannot be written again yet"):
        store.commit()
    rescued = store._rescued
    assert rescued is not None and os.path.exists(rescued)
    os.rename(away, path)                                       # back, and writable again
    monkeypatch.setattr(store_files, "make_directory", make_directory)
    keep(store, "bob", {"type": "message", "text": "later"})
    store.commit()
    assert store.failing is None and "is back at" in store.notice
    assert not os.path.exists(rescued)
    assert _texts_after_restart(store, path) == ["before", "while away", "later"]
