"""kill -9 at random moments: nothing acknowledged is lost, nothing is shown twice.

A sender streams numbered messages to an offline user, several per connection, while the test
kills the real server process with SIGKILL at seeded random points (often with requests in
flight) and starts it again on the same data directory. The sender does what client.py does:
it repeats every message whose answer it did not get (the test also throws some answers away,
as a broken connection would), with the same `mid`, logging in again after a restart. Then the recipient logs in and takes its deliveries: every message exactly once, in order.
Bounded: 240 messages, at most 8 kills, every wait with a time-out.
"""
import json
import os
import random
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from realprocs import ROOT

MESSAGES = 240
BATCH = 6                    # requests written on one connection before any reply is read
WAIT_S = 10.0


def start_server(tmp_path, port, *options):
    """The real server on `port` (0: any); returns (process, port) once it listens."""
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "server.py"), str(port),
                             "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
                             *options],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)
    log.close()
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        found = re.findall(r"listening on [\d.]+:(\d+)", (tmp_path / "server.log").read_text())
        if len(found) > start_server.started.get(str(tmp_path), 0):
            start_server.started[str(tmp_path)] = len(found)
            return proc, int(found[-1])
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        select.select([], [], [], 0.02)     # a bounded pause between looks at the log

    raise AssertionError("the server did not start")


start_server.started = {}


def exchange(port, frames, kill=None):
    """Write frames (then bye) on one connection; `kill()` runs after writing. -> replies."""
    replies = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as conn:
            conn.sendall(b"".join(json.dumps(f).encode() + b"\n" for f in [*frames, {"type": "bye"}]))
            if kill:
                kill()
            data = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            replies = [json.loads(line) for line in data.splitlines() if line.strip()]
    except OSError:
        pass                                # refused or reset: the server died under us
    return replies


def login(port, user, password, listen_port=9):
    replies = exchange(port, [{"type": "login", "user": user, "password": password,
                               "port": listen_port, "id": "login"}])
    return replies[0]["token"] if replies and replies[0].get("type") == "welcome" else None


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
                       "mid": f"crash-{n}", "id": n} for n in batch]
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
        shown = []
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(WAIT_S)
            assert login(port, "seas", "summerisover", listener.getsockname()[1])
            while len(shown) < MESSAGES:
                conn, _ = listener.accept()
                with conn, conn.makefile("rwb") as stream:
                    for line in stream:
                        frame = json.loads(line)
                        if frame["type"] == "bye":
                            break
                        if frame["type"] == "message":
                            shown.append(frame["text"])
                            stream.write(json.dumps({"type": "ack", "seq": frame["seq"]}).encode()
                                         + b"\n")
                            stream.flush()
        assert shown == [f"m{n:03d}" for n in range(MESSAGES)]      # all, once each, in order
        # the last acknowledgements wait for a durable write (storage.py); a stop writes them
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
        db = sqlite3.connect(tmp_path / "data" / "chat.sqlite3")
        (left,) = db.execute("SELECT COUNT(*) FROM inbox").fetchone()
        db.close()
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
        bob.expect("columbia: kept through a crash")
    finally:
        for client_ in (alice, bob):
            if client_ is not None:
                client_.kill()
        proc.kill()
        proc.wait()
