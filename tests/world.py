"""Whole-system replay: real client cores and the real server core on a simulated network.

Where tests/replay.py speaks JSON to the server core, a World runs what users see: lines
typed into ChatClient cores, their requests carried (encoded and decoded, as on the wire)
to one ChatServer, its replies and deliveries carried back, and every timer (heartbeats,
the server's time-out, lockouts) on one virtual clock. The transcript is what each screen
shows and what the server logs, with the time:

      0.000 alice | You have successfully logged in.
     31.000 server | columbia timed out after 31 s without a request

Session files (tests/sessions/*.txt) hold one item per line:

    # words               a comment
    (blank line)          spacing
    start NAME [HOST]     start a client NAME on HOST (default 10.0.0.N); it listens on port 5000
    NAME> TEXT            NAME types TEXT (the rest of the line, exactly, after one space)
    NAME>> A || B || C    NAME's lines A, B and C all arrive before any answer does (a paste,
                          or input from a file)
    NAME ^C               NAME presses Ctrl-C
    NAME ^D               NAME's input ends
    NAME vanishes         NAME's process is gone: nothing more from it, and nothing reaches it
    NAME sleeps           NAME's machine sleeps: nothing reaches it, its timers wait
    NAME wakes            ... and wakes: the timers that came due meanwhile fire now
    + SECONDS             the clock moves on; every timer due meanwhile fires at its time
      LINE                (indented) what the step above must produce

Everything is in-memory and ordered: the same file gives the same transcript every run.
A World may also be given `Faults`: a seeded schedule that loses, repeats and delays requests,
replies, deliveries and acknowledgements, and cuts delivery connections short; the same seed
gives the same trouble every run.
`run_session(text)` rebuilds the file from its commands and the transcript so a test can
compare the two byte for byte; REPLAY_UPDATE=1 makes the test rewrite the file instead.
"""
import heapq
import pathlib
import random
from collections import deque

import client
import protocol
import server
from replay import counting_secrets
from storage import Store, load_credentials

CREDENTIALS_PATH = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
LISTEN_PORT = 5000
INDENT = "  "


def wire(frame):
    """A frame as it arrives after crossing the network: encoded, then decoded again."""
    return protocol.decode(protocol.encode(frame))


class SimClient:
    """One client process: its core, its address, and whether it still runs."""

    def __init__(self, name, host, settings):
        self.name = name
        self.host = host
        self.core = client.ChatClient(client.Settings(LISTEN_PORT, **settings))
        self.running = True
        self.asleep = False
        self.missed = []            # events that came while asleep
        self.exit_code = None


class Faults:
    """Seeded network trouble; each figure is the chance of that trouble at each chance for it."""

    def __init__(self, seed, lose_request=0.1, lose_reply=0.1, repeat_request=0.1,
                 fail_delivery=0.1, cut_delivery=0.1, repeat_frame=0.1, lose_ack=0.1,
                 delay_delivery=0.3):
        self.random = random.Random(seed)
        self.on = True
        self.odds = dict(lose_request=lose_request, lose_reply=lose_reply,
                         repeat_request=repeat_request, fail_delivery=fail_delivery,
                         cut_delivery=cut_delivery, repeat_frame=repeat_frame, lose_ack=lose_ack,
                         delay_delivery=delay_delivery)

    def __call__(self, trouble):
        """Does `trouble` happen this time?"""
        return self.on and self.random.random() < self.odds[trouble]


class World:
    """Client cores and a server core joined by an in-memory network under a virtual clock."""

    def __init__(self, server_settings=server.Settings(), faults=None, client_settings=None):
        self.faults = faults or (lambda trouble: False)
        self.client_settings = client_settings or {}
        self.now = 0.0
        self.store = Store(":memory:")
        self.server = server.ChatServer(load_credentials(CREDENTIALS_PATH), self.store,
                                        server_settings, make_secret=counting_secrets())
        self.clients = {}
        self.transcript = []
        self._queue = deque()       # (who, event): "server" or a client name
        self._timers = []           # heap of (at, seq, who, key)
        self._armed = {}            # (who, key) -> seq of the live timer
        self._seq = 0
        self._conns = 0
        self._requests = {}         # server conn -> (client name, request id, what the client hears)
        self._streams = {}          # (address, proof) -> frames on the open delivery connection
        self._deliveries = {}       # delivery conn -> what the server's glue knows of it

    # -- what a script does --------------------------------------------------------------

    def start(self, name, host=None):
        host = host or f"10.0.0.{len(self.clients) + 1}"
        self.clients[name] = SimClient(name, host, self.client_settings)
        self._send(name, client.Started())

    def type(self, name, *lines):
        """Lines that arrive together, before the network carries anything."""
        self._queue.extend((name, client.LineIn(text)) for text in lines[:-1])
        self._send(name, client.LineIn(lines[-1]))

    def interrupt(self, name):
        self._send(name, client.Interrupted())

    def end_input(self, name):
        self._send(name, client.InputEnded())

    def vanish(self, name):
        self.clients[name].running = False

    def sleep(self, name):
        self.clients[name].asleep = True

    def wake(self, name):
        sim = self.clients[name]
        sim.asleep = False
        missed, sim.missed = sim.missed, []
        for event in missed:
            self._send(name, event)

    def advance(self, seconds):
        """Move the clock, firing each due timer at exactly its time, in (time, arm order)."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            at, seq, who, key = heapq.heappop(self._timers)
            if self._armed.get((who, key)) != seq:
                continue            # replaced or cancelled
            del self._armed[(who, key)]
            self.now = max(self.now, at)
            self._send(who, server.Expired(key) if who == "server" else client.Expired(key))
        self.now = until

    # -- the network -----------------------------------------------------------------------

    def _send(self, who, event):
        self._queue.append((who, event))
        while self._queue:
            self._run_queue()
            self._flush_streams()   # what the server queued goes out once things are quiet

    def _run_queue(self):
        while self._queue:
            who, event = self._queue.popleft()
            if who == "glue":
                self._delivery_closed(event)
            elif who == "server":
                self._server_does(self.server.handle(event, self.now))
                self.store.commit()
            elif self.clients[who].asleep:
                self.clients[who].missed.append(event)
            elif self.clients[who].running:
                self._client_does(self.clients[who], self.clients[who].core.handle(event, self.now))

    def _arm(self, who, key, at):
        self._seq += 1
        self._armed[(who, key)] = self._seq
        heapq.heappush(self._timers, (at, self._seq, who, key))

    def _client_does(self, sim, actions):
        for action in actions:
            kind = type(action).__name__
            if kind == "Print":
                self._record(sim.name, action.text)
            elif kind == "Log":
                self._record(sim.name + " log", action.text)
            elif kind == "Request":
                self._request(sim, action)
            elif kind == "Arm":
                self._arm(sim.name, action.key, action.at)
            elif kind == "Cancel":
                self._armed.pop((sim.name, action.key), None)
            elif kind == "Exit":
                sim.running = False
                sim.exit_code = action.code
                self._record(sim.name, f"(exit {action.code})")
            elif kind == "SendTo" and action.frame.get("type") == "ack":
                if not self.faults("lose_ack"):
                    delivery = self._deliveries[action.conn]
                    seq = wire(action.frame)["seq"]
                    delivery["acked"] = max(delivery["acked"], seq)
                    self._queue.append(("server", server.Acked(delivery["proof"], seq)))
            elif kind not in ("AskSecret", "ShowOnline", "CloseConn", "SendTo"):
                raise AssertionError(f"the world cannot carry {action!r}")

    def _request(self, sim, action):
        """A short connection to the server; faults may lose it, its reply, or send it twice."""
        if self.faults("lose_request"):
            self._queue.append((sim.name, client.RequestFailed(action.request_id, "lost")))
            return
        copies = 2 if self.faults("repeat_request") else 1
        for copy in range(copies):
            self._conns += 1
            # the client hears the first copy's fate only: its reply, or a failed connection
            fate = "repeat" if copy else "lost" if self.faults("lose_reply") else "answered"
            self._requests[self._conns] = (sim.name, action.request_id, fate)
            frame = wire({**action.frame, "id": action.request_id})
            self._queue.append(("server", server.Request(self._conns, frame, sim.host)))

    def _server_does(self, actions):
        for action in actions:
            if isinstance(action, server.Reply):
                name, request_id, fate = self._requests[action.conn]
                if fate == "answered":
                    self._queue.append((name, client.Replied(request_id, wire(action.frame))))
                elif fate == "lost":
                    self._queue.append((name, client.RequestFailed(request_id, "reply lost")))
            elif isinstance(action, server.Deliver):
                # one connection per session at a time, as the server's glue keeps it
                self._streams.setdefault((action.address, action.proof), []).append(action.frame)
            elif isinstance(action, server.Arm):
                self._arm("server", action.key, action.at)
            elif isinstance(action, server.Log):
                self._record("server", action.text)

    def _flush_streams(self):
        keys = list(self._streams)
        if self.faults("delay_delivery"):
            self.faults.random.shuffle(keys)        # other sessions' connections overtake
            keys = keys[1:]                         # and one stays open, to go out later
        for key in keys:
            self._deliver(*key, self._streams.pop(key))

    def _deliver(self, address, proof, frames):
        """What the server's glue does: connect, hello, the frames, bye; or report failure."""
        target = next((sim for sim in self.clients.values()
                       if sim.running and not sim.asleep and (sim.host, LISTEN_PORT) == address), None)
        if target is None or self.faults("fail_delivery"):
            self._queue.append(("server", server.Undelivered(address, proof, frames)))
            return
        self._conns += 1
        self._deliveries[self._conns] = {"address": address, "proof": proof, "frames": frames,
                                         "acked": 0}
        sent = list(frames)
        if self.faults("repeat_frame"):
            at = self.faults.random.randrange(len(sent))
            sent.insert(at, sent[at])
        ending = [{"type": "bye"}]
        if self.faults("cut_delivery"):
            sent = sent[:self.faults.random.randrange(len(sent))]
            ending = []
        for frame in [{"type": "hello", "proof": proof}, *sent, *ending]:
            self._queue.append((target.name, client.Incoming(self._conns, wire(frame))))
        self._queue.append((target.name, client.IncomingClosed(self._conns)))
        self._queue.append(("glue", self._conns))

    def _delivery_closed(self, conn):
        """The glue's view when a delivery connection ends: what was not acknowledged failed."""
        delivery = self._deliveries.pop(conn)
        unacked = [frame for frame in delivery["frames"]
                   if "seq" in frame and frame["seq"] > delivery["acked"]]
        if unacked:
            self._queue.append(("server", server.Undelivered(delivery["address"],
                                                              delivery["proof"], unacked)))

    def _record(self, who, text):
        self.transcript.append(f"{self.now:9.3f} {who} | {text}")


def run_command(world, command):
    """Carry out one script line."""
    if command.startswith("+ "):
        world.advance(float(command[2:]))
        return
    head, _, rest = command.partition(" ")
    if head == "start":
        world.start(*rest.split())
    elif head.endswith(">>"):
        world.type(head[:-2], *rest.split(" || "))
    elif head.endswith(">"):
        world.type(head[:-1], rest)
    elif rest == "^C":
        world.interrupt(head)
    elif rest == "^D":
        world.end_input(head)
    elif rest == "vanishes":
        world.vanish(head)
    elif rest == "sleeps":
        world.sleep(head)
    elif rest == "wakes":
        world.wake(head)
    else:
        raise ValueError(f"not a session command: {command!r}")


def run_session(text, world=None):
    """Run a session file's commands; returns the file rebuilt with the transcript."""
    world = world or World()
    rebuilt = []
    taken = 0
    for line in text.splitlines():
        if line.startswith(INDENT):
            continue            # an expected line: it is rebuilt from the transcript
        rebuilt.append(line)
        if line.strip() == "" or line.startswith("#"):
            continue
        run_command(world, line)
        rebuilt.extend(INDENT + out for out in world.transcript[taken:])
        taken = len(world.transcript)
    return "\n".join(rebuilt) + "\n"
