"""Replay harness for the server core: a virtual clock, named connections, a transcript.

A Script drives a ChatServer the way the glue does, without sockets or sleeps:
`connect` names a connection, `say` feeds one line through server_events.accepted_event
(the glue's own reading of a line, so a frame that cannot be decoded reaches the core as it
does in production), `advance` moves the clock and fires due timers at exactly their times,
in (time, arm order), and `undelivered` reports a delivery the glue could not make. The
store commits after every event, as the glue does once per pass. Every Reply, Deliver, Close
and Log becomes one transcript line (a delivery is named by the user whose welcome gave that
address):

    12.000 a <- {"type":"ok","id":3}            a reply on connection a
    12.000 @alice/s4 <- {"type":"message",...}  a delivery to alice's port, hello proof s4
    12.000 a closed (bye)                       the server closes connection a
    12.000 log alice logged out                 a server log line

Script files (tests/replays/*.txt) hold one item per line:

    # words                 a comment
    (blank line)            spacing
    connect NAME [HOST]     open connection NAME from HOST (default 127.0.0.1)
    > NAME TEXT             NAME sends TEXT (the rest of the line, exactly) as one line
    + SECONDS               advance the clock
    ! TARGET                the delivery connection to TARGET failed (refused); TARGET
                            is a user (their latest address) or HOST:PORT
    ack USER SEQ            USER's client acknowledges every message up to SEQ
    set NAME=VALUE ...      (first command only) the server's Settings for this script
    * N CMD | CMD ...       run the commands N times; the output is summarized as
                            "COUNTx LINE" per distinct line with its time left out
      LINE                  (indented) the transcript the step above must produce

`run_script(text)` runs the commands with a fresh server (the accounts of
credential.txt, an in-memory store, secrets s1, s2, ...) and rebuilds the file from
its commands and the transcript, so a test compares the result with the file byte
for byte. REPLAY_UPDATE=1 makes the test rewrite the files instead: read the diff.
"""
import pathlib
from collections import Counter
from dataclasses import replace

import protocol
from chat_server import ChatServer, Settings
from server_events import (Acked, Arm, Close, Deliver, Expired, Log, Reply, Undelivered,
                           accepted_event)
from passwords import load_credentials
from storage import Store

CREDENTIALS_PATH = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
DEFAULT_HOST = "127.0.0.1"
INDENT = "  "


def counting_secrets():
    """A make_secret that returns s1, s2, ... so transcripts are the same every run."""
    count = 0

    def make_secret():
        nonlocal count
        count += 1
        return f"s{count}"
    return make_secret


def shown(frame):
    """A frame as the one compact JSON line the wire would carry, newline left out."""
    return protocol.encode(frame).decode("utf-8").rstrip("\n")


class Script:
    """A ChatServer under a virtual clock, with named connections and a transcript."""

    def __init__(self, server, store=None, start_at=0.0):
        self.server = server
        self.store = store
        self.now = start_at
        self.timers = {}      # key -> (at, arm order); the same key replaces the timer
        self.transcript = []  # every line recorded so far
        self._taken = 0
        self._arm_count = 0
        self._conns = {}      # name -> (conn id, host)
        self._conn_names = {}
        self._address_users = {}  # (host, port) -> user, learned from welcome replies
        self._user_addresses = {}
        self._user_proofs = {}      # user -> the proof of their latest welcome
        self._address_proofs = {}   # (host, port) -> the proof of the latest delivery there
        self._login_address = None

    def connect(self, name, host=DEFAULT_HOST):
        """Open connection `name` from `host`."""
        if name in self._conns:
            raise ValueError(f"connection {name!r} is already open")
        conn = len(self._conns) + 1
        self._conns[name] = (conn, host)
        self._conn_names[conn] = name

    def say(self, name, frame_or_text):
        """Connection `name` sends a frame (dict) or one line of text."""
        conn, host = self._conns[name]
        text = frame_or_text if isinstance(frame_or_text, str) else shown(frame_or_text)
        event = accepted_event(conn, host, text.encode("utf-8"))
        if event is None:
            return                              # (a blank line is skipped)
        # A welcome names the user of this address, in time for the deliveries that follow it.
        frame = getattr(event, "frame", {})
        self._login_address = (host, frame.get("port"))
        self._feed(event)

    def advance(self, seconds):
        """Move the clock on by `seconds`, firing each due timer at its own time."""
        # Millisecond steps keep 29.999 + 0.001 equal to 30 exactly.
        until = round(self.now + seconds, 3)
        while True:
            due = [(at, order, key) for key, (at, order) in self.timers.items() if at <= until]
            if not due:
                break
            at, _, key = min(due)
            del self.timers[key]
            self.now = max(self.now, at)
            self._feed(Expired(key))
            if key in self.timers and self.timers[key][0] <= self.now:
                raise RuntimeError(f"timer {key} re-armed for {self.timers[key][0]} at "
                                   f"{self.now}: it would fire forever")
        self.now = until

    def undelivered(self, target):
        """The delivery connection to `target` failed: a user (their latest address) or
        "HOST:PORT"."""
        host, colon, port = target.rpartition(":")
        address = (host, int(port)) if colon else self._user_addresses[target]
        self._feed(Undelivered(address, self._address_proofs.get(address, "?"), "refused"))

    def acked(self, user, seq):
        """`user`'s client acknowledges every message up to `seq`."""
        self._feed(Acked(self._user_proofs[user], seq))

    def take(self):
        """The transcript lines recorded since the last take()."""
        lines = self.transcript[self._taken:]
        self._taken = len(self.transcript)
        return lines

    def _learn_address(self, user, address):
        self._address_users[address] = user
        self._user_addresses[user] = address

    def _feed(self, event):
        actions = self.server.handle(event, self.now)
        if self.store is not None:
            self.store.commit()  # as the glue does once per pass
        for action in actions:
            self._record(action)
        return actions

    def _record(self, action):
        {Reply: self._record_reply, Deliver: self._record_delivery, Close: self._record_close,
         Log: self._record_log, Arm: self._record_arm}[type(action)](action, f"{self.now:.3f}")

    def _record_reply(self, action, at):
        if action.frame.get("type") == "welcome":
            self._learn_address(action.frame["user"], self._login_address)
            self._user_proofs[action.frame["user"]] = action.frame["proof"]
        self.transcript.append(f"{at} {self._conn_names[action.conn]} <- {shown(action.frame)}")

    def _record_delivery(self, action, at):
        self._address_proofs[action.address] = action.proof
        to = self._address_users.get(action.address) or "%s:%s" % action.address
        self.transcript.append(f"{at} @{to}/{action.proof} <- {shown(action.frame)}")

    def _record_close(self, action, at):
        self.transcript.append(f"{at} {self._conn_names[action.conn]} closed ({action.reason})")

    def _record_log(self, action, at):
        self.transcript.append(f"{at} log {action.text}")

    def _record_arm(self, action, at):
        """Timers are state, not output."""
        self._arm_count += 1
        self.timers[action.key] = (action.at, self._arm_count)


def new_script(settings=Settings()):
    """A Script around a fresh server with the course's accounts and an in-memory store."""
    store = Store(":memory:", new_identity="store1")
    server = ChatServer(load_credentials(CREDENTIALS_PATH), store, settings,
                        make_secret=counting_secrets())
    return Script(server, store)


def script_settings(assignments):
    """"name=value name=value" -> Settings with those fields changed (numbers only)."""
    changes = dict(each.split("=", 1) for each in assignments.split())
    return replace(Settings(), **{name: type(getattr(Settings, name))(value)
                                  for name, value in changes.items()})


def run_command(script, command):
    """Run one command line (not a comment, blank or transcript line)."""
    word, _, rest = command.partition(" ")
    if word == "connect":
        script.connect(*rest.split())
    elif word == ">":
        name, _, text = rest.partition(" ")
        script.say(name, text)
    elif word == "+":
        script.advance(float(rest))
    elif word == "!":
        script.undelivered(rest.strip())
    elif word == "ack":
        user, seq = rest.split()
        script.acked(user, int(seq))
    elif word == "*":
        count, _, commands = rest.partition(" ")
        for _ in range(int(count)):
            for each in commands.split(" | "):
                run_command(script, each)
    else:
        raise ValueError(f"not a replay command: {command!r}")


def summary(lines):
    """Transcript lines -> "COUNTx LINE" per distinct line without its time, first seen first."""
    counts = Counter(line.split(" ", 1)[1] for line in lines)
    return [f"{count}x {line}" for line, count in counts.items()]


def run_script(text):
    """Run a script file's commands; returns the file rebuilt with the actual transcript."""
    script = new_script()
    out = []
    for line in text.splitlines():
        if line.startswith(INDENT):
            continue  # an expected line: replaced by what actually happens
        out.append(line)
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("set "):
            if script.transcript:
                raise ValueError("set must come before every other command")
            script = new_script(script_settings(line[len("set "):]))
            continue
        run_command(script, line)
        produced = script.take()
        if line.startswith("*"):
            produced = summary(produced)
        out += [INDENT + each for each in produced]
    return "\n".join(out) + "\n"
