"""kill -9 at random moments: nothing acknowledged is lost, nothing is shown twice.

A sender streams numbered messages to an offline user, several per connection, while the test
kills the real server process with SIGKILL at seeded random points (often with requests in
flight) and starts it again on the same data directory. The sender does what client.py does:
it repeats every message whose answer it did not get (the test also throws some answers away,
as a broken connection would), with the same `mid`, logging in again after a restart. Then the recipient logs in and takes its deliveries: every message exactly once, in order.
Bounded: 240 messages, at most 8 kills, every wait with a time-out.
"""
import os
import random
import signal
import sqlite3
import subprocess
import sys

import pytest

from realprocs import ROOT, WAIT_S, exchange, start_server, take_deliveries, token_of as login
from storage import Store

MESSAGES = 240
BATCH = 6                    # requests written on one connection before any reply is read


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_acknowledged_messages_survive_kill_9_and_are_shown_exactly_once(tmp_path, sync):
    """With --sync normal too: a commit then survives the server's crash, if not a power cut."""
    rng = random.Random(4119)
    options = ("--sync", sync)
    proc, port = start_server(tmp_path, 0, *options)
    kills = 0
    try:
        token = login(port, "columbia", "116bway")
        unanswered = list(range(MESSAGES))      # message numbers not yet acknowledged
        acknowledged = set()
        rounds = 0
        while unanswered and rounds < 400:
            rounds += 1
            batch = unanswered[:BATCH]
            frames = [{"type": "message", "token": token, "to": "seas", "text": f"m{n:03d}",
                       "mid": f"crash-{n + 1}", "id": n} for n in batch]
            killing = kills < 8 and rng.random() < 0.15
            replies = exchange(port, frames, kill=(lambda: proc.send_signal(signal.SIGKILL))
                               if killing else None)
            if rng.random() < 0.2:
                replies = []                # the connection broke after the server answered
            for reply in replies:
                if reply.get("type") == "ok":
                    acknowledged.add(reply["id"])
                elif reply.get("code") == "no_session":
                    token = None
            unanswered = [n for n in unanswered if n not in acknowledged]
            if killing or token is None:
                if killing:
                    kills += 1
                    proc.wait(WAIT_S)
                    proc, port = start_server(tmp_path, port, *options)
                token = login(port, "columbia", "116bway")
        assert not unanswered and kills >= 3
        # the recipient logs in with a listener and takes every delivery, acknowledging each
        shown = take_deliveries(port, "seas", "summerisover", MESSAGES)
        assert shown == [f"m{n:03d}" for n in range(MESSAGES)]      # all, once each, in order
        # the last acknowledgements wait for a durable write (storage.py); a stop writes them
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
        store = Store(str(tmp_path / "data" / "chat.sqlite3"))
        left = store.count_all_waiting()
        store.close()
        assert left == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_client_is_told_the_server_restarted_and_gets_what_was_kept(tmp_path):
    from realprocs import PtyClient
    proc, port = start_server(tmp_path, 0)
    alice = bob = None
    try:
        alice, bob = PtyClient(port), PtyClient(port)
        for client_, (name, password) in ((alice, ("columbia", "116bway")),
                                          (bob, ("seas", "summerisover"))):
            client_.expect("Please enter username:")
            client_.type(name)
            client_.expect("Please enter password:")
            client_.type(password)
            client_.expect("You have successfully logged in.")
        bob.type("logout")
        alice.expect("seas has logged out.")
        alice.type("message seas kept through a crash")
        alice.expect("will be delivered when they log in")
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
        proc, port = start_server(tmp_path, port)
        alice.type("online")
        alice.expect("The server has restarted, which ended your session. Please log in again.")
        alice.expect("Please enter username:")
        bob.expect("Please enter username:")
        bob.type("seas")
        bob.expect("Please enter password:")
        bob.type("summerisover")
        bob.expect("columbia (while you were away, sent ")
        bob.expect("): kept through a crash")
    finally:
        for client_ in (alice, bob):
            if client_ is not None:
                client_.kill()
        proc.kill()
        proc.wait()


def test_a_data_directory_wiped_while_the_server_runs_loses_nothing_it_acknowledged(tmp_path):
    """rm -rf of the data directory under a running server: the store's file is written again
    from the open store at the next commit, so what was answered ok before and after the wipe
    survives a kill -9 (a trial found the five after it gone: they went to a deleted file)."""
    import shutil
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0)
    try:
        token = login(port, "columbia", "116bway")

        numbers = iter(range(1, 100))

        def send(texts):
            frames = [{"type": "message", "token": token, "to": "seas", "text": text,
                       "mid": f"wipe-{next(numbers)}", "id": n} for n, text in enumerate(texts)]
            assert [reply["type"] for reply in exchange(port, frames)] == ["ok"] * len(texts)

        send(["before1", "before2"])
        shutil.rmtree(tmp_path / "data")
        send(["after1", "after2", "after3"])
        wait_log(tmp_path, "the store's file was deleted, or moved, while the server ran: "
                          "written again")
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
        proc, port = start_server(tmp_path, port)
        assert take_deliveries(port, "seas", "summerisover", 5) == [
            "before1", "before2", "after1", "after2", "after3"]
    finally:
        proc.kill()
        proc.wait()


def three_answered_ok(port, prefix):
    """columbia sends seas `prefix`1..3, each answered ok."""
    token = login(port, "columbia", "116bway")
    frames = [{"type": "message", "token": token, "to": "seas", "text": f"{prefix}{n}",
               "mid": f"{prefix}-{n}", "id": n} for n in range(1, 4)]
    assert [reply["type"] for reply in exchange(port, frames)] == ["ok"] * 3


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_store_whose_file_could_not_be_written_again_leaves_a_copy(tmp_path, stop):
    """A data directory wiped and a file put at its path: the store's file cannot be written
    again, and a stop closed its last handle: a trial's restart had lost 238 messages answered
    ok. A copy is written elsewhere as the loss is found, and at a stop again, and the log
    says where and what to do with it."""
    import re
    import shutil
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0)
    try:
        three_answered_ok(port, "kept")
        shutil.rmtree(tmp_path / "data")
        (tmp_path / "data").write_bytes(b"not a directory")
        wait_log(tmp_path, "cannot be written again yet")
        proc.send_signal(stop)
        assert proc.wait(WAIT_S) == (0 if stop == signal.SIGTERM else -stop)
        copy = re.findall(r"(?:store holds is at|it held is copied to) ([^\s;)]+)",
                          (tmp_path / "server.log").read_text())[-1]
        (tmp_path / "data").unlink()
        # a start with the copy about (its log unread) is refused, and says where it is
        refused = subprocess.run([sys.executable, os.path.join(ROOT, "server.py"), "0",
                                  "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data")],
                                 capture_output=True, text=True, timeout=WAIT_S, cwd=ROOT)
        assert refused.returncode == 1 and f"{copy} is a copy of the store" in refused.stderr
        os.rename(copy, tmp_path / "data" / "chat.sqlite3")      # the operator puts it back
        proc, port = start_server(tmp_path, port)
        assert take_deliveries(port, "seas", "summerisover", 3) == ["kept1", "kept2", "kept3"]
    finally:
        proc.kill()
        proc.wait()


def test_a_data_directory_wiped_while_the_server_is_idle_is_written_again_unasked(tmp_path):
    """Wiped while nothing wrote, the store was noticed gone only at the next commit: a
    trial's kill -9 meanwhile lost the five messages it had answered ok."""
    import shutil
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0)
    try:
        three_answered_ok(port, "idle")
        shutil.rmtree(tmp_path / "data")
        wait_log(tmp_path, "the store's file was deleted, or moved, while the server ran: "
                          "written again")
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
        proc, port = start_server(tmp_path, port)
        assert take_deliveries(port, "seas", "summerisover", 3) == ["idle1", "idle2", "idle3"]
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("deleted, said", [
    ("chat.sqlite3", "the store's file was deleted, or moved, while the server ran: written "
                     "again"),
    ("chat.sqlite3-wal", "the store's write-ahead log was deleted while the server ran: what it "
                         "held was copied"),
])
def test_the_stores_file_or_its_log_alone_deleted_under_a_running_server_loses_nothing(
        tmp_path, deleted, said):
    """The file deleted with its log left beside it: the file written again took in the old
    log and came out corrupt; the log deleted: nothing noticed, and a kill -9 lost what it
    held (a trial's, both). Now neither loses anything answered ok, through a kill -9 and a
    stop after it."""
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0, "--user-rate", "0", "--address-rate", "0")
    try:
        token = login(port, "columbia", "116bway")
        sent = []

        def send(count):
            frames = []
            for _ in range(count):
                sent.append(f"m{len(sent)}")
                frames.append({"type": "message", "token": token, "to": "seas",
                               "text": sent[-1] * 40, "mid": f"del-{len(sent)}", "id": 1})
            assert [reply["type"] for reply in exchange(port, frames)] == ["ok"] * count
        for _ in range(20):
            send(10)
        os.remove(tmp_path / "data" / deleted)
        for _ in range(20):
            send(10)
        wait_log(tmp_path, said)
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_S)
        proc, port = start_server(tmp_path, port)
        assert take_deliveries(port, "seas", "summerisover", len(sent)) == [
            text * 40 for text in sent]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
        db = sqlite3.connect(tmp_path / "data" / "chat.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT])
def test_a_hangup_stops_the_server_as_a_terminate_does(tmp_path, signum):
    """SIGHUP is what closing the terminal or SSH session that started the server sends: a
    stop, logged, with what was acknowledged written (an operator's trial saw it die with
    status 129 and no word)."""
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0)
    try:
        token = login(port, "columbia", "116bway")
        frames = [{"type": "message", "token": token, "to": "seas", "text": "kept",
                   "mid": "hup-1", "id": 1}]
        assert exchange(port, frames)[0]["type"] == "ok"
        proc.send_signal(signum)
        assert proc.wait(WAIT_S) == 0
        wait_log(tmp_path, f"stopping ({signal.Signals(signum).name})")
        wait_log(tmp_path, "stopped")
        proc, port = start_server(tmp_path, port)
        assert take_deliveries(port, "seas", "summerisover", 1) == ["kept"]
    finally:
        proc.kill()
        proc.wait()


def test_the_start_says_when_messages_wait_for_names_that_are_accounts_no_more(tmp_path):
    """A removed account's messages stay stored, for whoever is given that name later: the
    operator is told at the start which names, not left to find out."""
    from realprocs import wait_log
    proc, port = start_server(tmp_path, 0)
    try:
        token = login(port, "columbia", "116bway")
        for number in (1, 2):
            frames = [{"type": "message", "token": token, "to": "seas", "text": f"{number}",
                       "mid": f"gone-{number}", "id": number}]
            assert exchange(port, frames)[0]["type"] == "ok"
    finally:
        proc.terminate()
        proc.wait(WAIT_S)
    credentials = tmp_path / "accounts.txt"
    credentials.write_text("columbia 116bway\n")
    proc, _ = start_server(tmp_path, 0, "--credentials", str(credentials))
    try:
        wait_log(tmp_path, f"messages wait for names that {credentials} does not have: "
                           f"seas (2); kept, for whoever is given such a name")
    finally:
        proc.kill()
        proc.wait()


def test_the_start_counts_accounts_in_words_and_says_when_there_are_none(tmp_path):
    from realprocs import wait_log
    for text, said in (("columbia 116bway\n", "with 1 account from "),
                       ("# nobody yet\n", "has no accounts: nobody can log in")):
        credentials = tmp_path / "accounts.txt"
        credentials.write_text(text)
        proc, _ = start_server(tmp_path, 0, "--credentials", str(credentials))
        try:
            wait_log(tmp_path, said)
        finally:
            proc.kill()
            proc.wait()
