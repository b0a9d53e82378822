"""The floor of the staying design (issue 15), a yardstick for `make bench`, not a chat server.

It speaks the part of PROTOCOL.md that bench.py's staying scenarios use (login, message,
broadcast, ack, logout), and keeps the design's one promise: every message it says yes to is
in a committed record before the yes and the deliveries leave. It does the design's steps and
nothing else, each as one line of Python where the language allows:

- a read of up to the reactor's READ_CHUNK_BYTES per peer per pass, split into lines;
- each line decoded by the json module's C scanner; the session found by its token; the
  recipient and the text checked for their type; a number given; the delivered line made
  from a template;
- every message of a pass in one row, with its recipients, in one commit (SQLite in WAL
  mode, as the store's); acknowledgements as cursors, written once a second;
- a delivery is one append to its recipient's buffer, and a read's run of broadcasts one
  append to each recipient's (as the chat server's runs); each buffer is sent once a pass.

What the chat server does besides, the floor does not: no rate limits, quotas, block lists,
exactly-once counters, windows, presence notices, offline backlogs, heartbeats, time-outs,
compaction, logs, error replies beyond a one-word refusal, nor recovery at start (every round
of bench.py begins with a fresh data directory). Passwords are compared as plain text, as
bench.py writes them. So each figure it reaches is one this design cannot pass in CPython on
the same machine in the same hour: bench.py reports each staying scenario against it.

`python3 floor_server.py --data-dir D --credentials F [--sync full|normal]`; it logs
"listening on HOST:PORT" and serves until SIGTERM.
"""
import argparse
import json
import os
import secrets
import selectors
import signal
import socket
import sqlite3
import sys
import time

from reactor import READ_CHUNK_BYTES

CURSORS_EVERY_S = 1.0   # acknowledgements reach the disk at most this often, as the store's
_string = json.encoder.encode_basestring
_scan = json.JSONDecoder().scan_once   # the C scanner, as protocol.decode's usual case (which
                                        # refuses NaN too: a bench's frames hold none)
_REFUSED = b'{"type":"error","code":"refused"}\n'


class Peer:
    """One accepted connection: its socket, its unfinished line, what waits to be sent."""

    __slots__ = ("sock", "tail", "out", "user", "ending", "writing")

    def __init__(self, sock):
        self.sock, self.tail, self.out, self.user = sock, b"", bytearray(), None
        self.ending = False         # logged out: closed once its reply is sent
        self.writing = False        # waiting to be writable (its buffer did not all go)


class FloorServer:
    """The design's steps with no rules (see the module's docstring)."""

    def __init__(self, data_dir, credentials, sync="full", host="127.0.0.1", port=0):
        with open(credentials, encoding="utf-8") as lines:
            self.passwords = dict(line.split() for line in lines if len(line.split()) == 2)
        self.db = sqlite3.connect(os.path.join(data_dir, "floor.db"))
        self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={sync.upper()}")
        self.db.executescript("CREATE TABLE IF NOT EXISTS log (first_seq INTEGER PRIMARY KEY, "
                              "recipients TEXT NOT NULL, lines BLOB NOT NULL);"
                              "CREATE TABLE IF NOT EXISTS cursors (user TEXT PRIMARY KEY, "
                              "upto INTEGER NOT NULL);")
        self.listener = socket.create_server((host, port), backlog=4096)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.by_token = {}          # token -> user
        self.online = {}            # user -> Peer
        self.heads = {}             # user -> the start of their delivered lines
        self.seq = 0
        self.lines, self.recipients = [], []    # this pass's messages, kept at its end
        self.run = []               # a read's broadcasts so far, delivered at its end
        self.cursors, self.moved, self.cursors_at = {}, set(), 0.0
        self.to_send = set()        # peers with something to send after the commit
        self.requests = {"login": self._login, "message": self._message,
                         "broadcast": self._broadcast, "ack": self._ack, "logout": self._logout}

    def serve_pass(self, timeout_s=None):
        """One pass: read what is ready, commit what it accepted, then send."""
        for key, mask in self.selector.select(timeout_s):
            if key.data is None:
                self._accept()
                continue
            peer = key.data
            if mask & selectors.EVENT_READ:
                self._read(peer)
            if mask & selectors.EVENT_WRITE:
                self.to_send.add(peer)
        self._commit()
        to_send, self.to_send = self.to_send, set()
        for peer in to_send:
            self._send(peer)

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, Peer(sock))

    def _read(self, peer):
        try:
            data = peer.sock.recv(READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(peer)
            return
        data = peer.tail + data
        end = data.rfind(b"\n")
        peer.tail = data[end + 1:]
        if end < 0:
            return
        requests, run = self.requests, self.run
        for line in data[:end].split(b"\n"):
            try:
                text = line.decode()
                frame, stop = _scan(text, 0)
                if stop != len(text):
                    raise ValueError("not one JSON value")
                kind = frame["type"]
                if run and kind != "broadcast":
                    self._end_run(peer)
                requests[kind](peer, frame)
            except (ValueError, KeyError, TypeError, StopIteration):
                peer.out += _REFUSED
        if run:
            self._end_run(peer)
        self.to_send.add(peer)

    def _login(self, peer, frame):
        user = frame["user"]
        if peer.user is not None or self.passwords.get(user) != frame["password"]:
            raise ValueError("refused")
        token = secrets.token_urlsafe(16)
        self.by_token[token] = peer.user = user
        self.online[user] = peer
        if user not in self.heads:
            self.heads[user] = b'{"type":"message","from":%s,"text":' % _string(user).encode()
        peer.out += b'{"type":"welcome","token":"%s","id":%d}\n' % (token.encode(), frame["id"])

    def _message(self, peer, frame):
        user = self.by_token[frame["token"]]
        to, text = frame["to"], frame["text"]
        if to not in self.passwords or type(text) is not str:
            raise ValueError("refused")
        self.seq += 1
        line = b'%s%s,"seq":%d}\n' % (self.heads[user], _string(text).encode(), self.seq)
        self.lines.append(line)
        self.recipients.append(to)
        receiver = self.online.get(to)
        if receiver is not None:
            receiver.out += line
            self.to_send.add(receiver)
        peer.out += b'{"type":"ok","stored":%s,"id":%d}\n' % (
            b"false" if receiver is not None else b"true", frame["id"])

    def _broadcast(self, peer, frame):
        user = self.by_token[frame["token"]]
        text = frame["text"]
        if type(text) is not str:
            raise ValueError("refused")
        self.seq += 1
        line = b'{"type":"broadcast","from":%s,"text":%s,"seq":%d}\n' % (
            _string(user).encode(), _string(text).encode(), self.seq)
        self.lines.append(line)
        self.run.append(line)
        peer.out += b'{"type":"ok","id":%d}\n' % frame["id"]

    def _end_run(self, peer):
        """A read's broadcasts, from `peer`, to everyone else online: one append each."""
        run = b"".join(self.run)
        receivers = [other for other in self.online.values() if other is not peer]
        self.recipients.append("%d-%d:" % (self.seq - len(self.run) + 1, self.seq)
                               + ",".join([other.user for other in receivers]))
        self.run.clear()
        for receiver in receivers:
            receiver.out += run
        self.to_send.update(receivers)

    def _ack(self, peer, frame):
        seq = frame["seq"]
        if peer.user is None or type(seq) is not int:
            raise ValueError("refused")
        self.cursors[peer.user] = seq
        self.moved.add(peer.user)

    def _logout(self, peer, frame):
        user = self.by_token.pop(frame["token"])
        del self.online[user]
        peer.user, peer.ending = None, True
        peer.out += b'{"type":"ok","id":%d}\n' % frame["id"]

    def _commit(self):
        """The pass's messages as one row, and the cursors once a second, in one commit."""
        due = self.moved and time.monotonic() >= self.cursors_at + CURSORS_EVERY_S
        if not self.lines and not due:
            return
        if self.lines:
            self.db.execute("INSERT INTO log VALUES (?, ?, ?)",
                            (self.seq - len(self.lines) + 1, "\n".join(self.recipients),
                             b"".join(self.lines)))
            self.lines, self.recipients = [], []
        if due:
            self.db.executemany("INSERT OR REPLACE INTO cursors VALUES (?, ?)",
                                [(user, self.cursors[user]) for user in self.moved])
            self.moved.clear()
            self.cursors_at = time.monotonic()
        self.db.commit()

    def _send(self, peer):
        if peer.sock.fileno() < 0:
            return      # (closed earlier in the pass)
        if peer.out:
            try:
                sent = peer.sock.send(peer.out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._close(peer)
                return
            del peer.out[:sent]
        if peer.ending and not peer.out:
            self._close(peer)
        elif bool(peer.out) != peer.writing:
            peer.writing = bool(peer.out)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.writing else 0)
            self.selector.modify(peer.sock, events, peer)

    def close(self):
        """Close every connection, the listener and the database."""
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()
        self.db.close()

    def _close(self, peer):
        if peer.sock.fileno() < 0:
            return
        if peer.user is not None and self.online.get(peer.user) is peer:
            del self.online[peer.user]
        self.selector.unregister(peer.sock)
        peer.sock.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="floor_server.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--credentials", required=True)
    parser.add_argument("--sync", choices=("full", "normal"), default="full")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = FloorServer(args.data_dir, args.credentials, args.sync, args.host)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"listening on {args.host}:{server.port}", file=sys.stderr, flush=True)
    while True:
        server.serve_pass()


if __name__ == "__main__":
    main()
