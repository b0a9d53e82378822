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
    start NAME [HOST] stay  ... a client that stays connected (--stay-connected): its requests
                          and deliveries share one connection, cut by `NAME is cut`
    start NAME [HOST] irc   an IRC client on the IRC port (irc_session, as irc_glue runs it):
                          NAME> sends an IRC line; its screen is the lines it gets (PINGs are
                          answered and not shown); `NAME vanishes` drops its connection
    NAME is cut           NAME's staying connection breaks; it is made again 1 s later
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
gives the same trouble every run; they also cut staying connections.
`run_session(text)` rebuilds the file from its commands and the transcript so a test can
compare the two byte for byte; REPLAY_UPDATE=1 makes the test rewrite the file instead.
"""
import heapq
import pathlib
import random
from collections import deque

import chat_client
import client_events as ce
import irc_glue
import irc_session
import irc_wire
import protocol
import chat_server
import server_events
import stay
from terminal import screen_lines
from replay import counting_secrets
from server_events import accepted_event
from passwords import load_credentials
from storage import Store

CREDENTIALS_PATH = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"
SESSIONS = sorted((pathlib.Path(__file__).parent / "sessions").glob("*.txt"))   # recorded runs
LISTEN_PORT = 5000
WALL_START = 1_700_000_000.0    # the wall clock at time 0 (as reactor.VirtualClock's)
_SHOWN = (ce.Show, ce.Prompt, ce.AskConsent, ce.ShowOnline, ce.ShowSending,
          ce.ShowFate)    # what a screen shows
INDENT = "  "


def wire(frame):
    """A frame as it arrives after crossing the network: encoded, then decoded again."""
    return protocol.decode(protocol.encode(frame))


def line(frame):
    """A frame as the line the server's glue reads (no newline)."""
    return protocol.encode(frame)[:-1]


class SimClient:
    """One client process: its core, its address, and whether it still runs."""

    def __init__(self, name, host, settings, stays=False):
        self.name = name
        self.host = host
        # each client run has its own id for its messages; the name keeps transcripts the same
        self.core = chat_client.ChatClient(chat_client.Settings(LISTEN_PORT, stay=stays,
                                                      **{"client_id": name, **settings}))
        self.stays = stays
        self.conn = None            # its staying connection while open
        self.in_flight = set()      # request ids sent on it and not yet answered
        self.running = True
        self.asleep = False
        self.missed = []            # events that came while asleep
        self.exit_code = None


class SimIrc:
    """One IRC client connection: the session the IRC port keeps for it, and its address."""

    def __init__(self, name, host, conn, accounts):
        self.name = name
        self.host = host
        self.conn = conn
        self.session = irc_session.IrcSession(accounts, "chat.test", "#chat", host)
        self.running = True
        self.heard_at = None        # when it last sent a line (irc_glue's IrcLink.last_heard)


class Faults:
    """Seeded network trouble; each figure is the chance of that trouble at each chance for it."""

    def __init__(self, seed, lose_request=0.1, lose_reply=0.1, repeat_request=0.1,
                 fail_delivery=0.1, cut_delivery=0.1, repeat_frame=0.1, lose_ack=0.1,
                 delay_delivery=0.3, cut_stay=0.05):
        self.random = random.Random(seed)
        self.on = True
        self.odds = dict(lose_request=lose_request, lose_reply=lose_reply,
                         repeat_request=repeat_request, fail_delivery=fail_delivery,
                         cut_delivery=cut_delivery, repeat_frame=repeat_frame, lose_ack=lose_ack,
                         delay_delivery=delay_delivery, cut_stay=cut_stay)

    def __call__(self, trouble):
        """Does `trouble` happen this time?"""
        return self.on and self.random.random() < self.odds[trouble]


class World:
    """Client cores and a server core joined by an in-memory network under a virtual clock."""

    def __init__(self, server_settings=chat_server.Settings(), faults=None, client_settings=None):
        self.faults = faults or (lambda trouble: False)
        self.client_settings = client_settings or {}
        self.now = 0.0
        self.store = Store(":memory:", new_identity="store1")
        self.server = chat_server.ChatServer(load_credentials(CREDENTIALS_PATH), self.store,
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
        self._stream_users = {}     # (address, proof) -> whose session it is
        self._deliveries = {}       # delivery conn -> what the server's glue knows of it
        self._stays = {}            # open staying conn -> client name
        self._broken = set()        # staying conns that broke: what is still on its way is lost
        self._pushed = {}           # staying conn -> the proof of what the server pushed on it
        self._irc = {}              # IRC conn -> SimIrc
        self._irc_accounts = irc_session.folded(load_credentials(CREDENTIALS_PATH))

    # -- what a script does --------------------------------------------------------------

    def start(self, name, host=None, stays=False, irc=False):
        host = host or f"10.0.0.{len(self.clients) + 1}"
        if irc:
            self._conns += 1
            sim = self.clients[name] = SimIrc(name, host, self._conns, self._irc_accounts)
            self._irc[sim.conn] = sim
            self._arm(name, "keepalive", self.now + irc_glue.KEEPALIVE_S)
            return
        sim = self.clients[name] = SimClient(name, host, self.client_settings, stays)
        self._queue.append((name, ce.Started()))
        if stays:
            self._connect(sim)      # LinkUp follows Started, as in the glue
        self._drain()

    def type(self, name, *lines):
        """Lines that arrive together, before the network carries anything."""
        if isinstance(self.clients[name], SimIrc):
            for text in lines:
                self._irc_does(self.clients[name], irc_wire.parse(text.encode()))
            self._drain()
            return
        self._queue.extend((name, ce.LineIn(text)) for text in lines[:-1])
        self._send(name, ce.LineIn(lines[-1]))

    def interrupt(self, name):
        self._send(name, ce.Interrupted())

    def end_input(self, name):
        self._send(name, ce.InputEnded())

    def vanish(self, name):
        sim = self.clients[name]
        if isinstance(sim, SimIrc):
            self._irc_closed(sim)
            self._drain()
            return
        sim.running = False
        if sim.conn is not None:
            self._break(sim, reconnect=False)   # the system closes a dead process's connection
            self._drain()

    def cut(self, name):
        """NAME's staying connection breaks (a reset, a lost route)."""
        self._break(self.clients[name])
        self._drain()

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
            self._send(who, server_events.Expired(key) if who == "server" else ce.Expired(key))
        self.now = until

    # -- the network -----------------------------------------------------------------------

    def _send(self, who, event):
        self._queue.append((who, event))
        self._drain()

    def _drain(self):
        while self._queue:
            self._run_queue()
            self._flush_streams()   # what the server queued goes out once things are quiet

    def _run_queue(self):
        while self._queue:
            who, event = self._queue.popleft()
            if isinstance(who, tuple):  # carried on a staying connection: lost if it broke
                _, conn, who = who
                if conn in self._broken:
                    continue
                if isinstance(event, ce.Replied):
                    self.clients[who].in_flight.discard(event.request_id)
            if isinstance(self.clients.get(who), SimIrc):
                self._irc_does(self.clients[who], event)
            elif who == "link":
                self._reconnect(event.key[1])
            elif who == "glue":
                self._delivery_closed(event)
            elif who == "server":
                if isinstance(event, server_events.Undelivered):
                    self._drop_stale(event.address, event.proof)
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
            kind = type(action)
            if kind in _SHOWN:
                for text in screen_lines(action):
                    self._record(sim.name, text)
            elif kind is ce.Log:
                self._record(sim.name + " log", action.text)
            elif kind is ce.SendRequest:
                self._request(sim, action)
            elif kind is ce.Arm:
                self._arm(sim.name, action.key, action.at)
            elif kind is ce.Cancel:
                self._armed.pop((sim.name, action.key), None)
            elif kind is ce.Exit:
                sim.running = False
                sim.exit_code = action.code
                self._record(sim.name, f"(exit {action.code})")
                if sim.conn is not None:
                    self._break(sim, reconnect=False)
            elif kind is ce.SendTo and action.conn in self._pushed:
                if action.conn in self._stays:  # on a broken connection, lost with it
                    ack = accepted_event(action.conn, sim.host, line(action.frame))
                    self._queue.append((("stay", action.conn, "server"), ack))
            elif kind is ce.SendTo and action.frame.get("type") == "ack":
                if not self.faults("lose_ack"):
                    delivery = self._deliveries[action.conn]
                    seq = wire(action.frame)["seq"]
                    delivery["acked"] = max(delivery["acked"], seq)
                    self._queue.append(("server", server_events.delivery_event(
                        delivery["proof"], line(action.frame))))
            elif kind not in (ce.Status, ce.CloseConn, ce.SendTo, ce.TagLines):
                # (tags are the wire's: the world carries frames, as the glue untags them)
                raise AssertionError(f"the world cannot carry {action!r}")

    def _request(self, sim, action):
        """A short connection to the server; faults may lose it, its reply, or send it twice."""
        if sim.stays:
            self._stay_request(sim, action)
            return
        if self.faults("lose_request"):
            self._queue.append((sim.name, ce.RequestFailed(action.request_id, "lost")))
            return
        copies = 2 if self.faults("repeat_request") else 1
        for copy in range(copies):
            self._conns += 1
            # the client hears the first copy's fate only: its reply, or a failed connection
            fate = "repeat" if copy else "lost" if self.faults("lose_reply") else "answered"
            self._requests[self._conns] = (sim.name, action.request_id, fate)
            request = accepted_event(self._conns, sim.host,
                                     line({**action.frame, "id": action.request_id}))
            self._queue.append(("server", request))

    def _server_does(self, actions):
        for action in actions:
            if isinstance(action, server_events.DeliverEach):
                # one stored message to many staying connections: as a Deliver to each
                self._server_does([server_events.Deliver(None, "", action.frame, conn)
                                   for conn in action.conns])
                continue
            if isinstance(action, server_events.DeliverRun):
                # stored messages in order to many staying connections: each as a Deliver
                self._server_does([server_events.Deliver(None, "", frame, conn)
                                   for conn in action.conns for frame in action.frames])
                continue
            if isinstance(action, server_events.Reply) and action.line is not None:
                # a line the core made from its template is the frame's own line
                assert action.line == protocol.reply_line(action.frame), action
            irc = self._irc.get(getattr(action, "conn", None))
            if irc is not None and isinstance(action, (server_events.Reply,
                                                       server_events.Deliver)):
                self._queue.append((irc.name, wire(action.frame)))
            elif irc is not None and isinstance(action, server_events.Close):
                self._irc_closed(irc)
            elif isinstance(action, server_events.Reply) and action.conn in self._stays:
                name = self._stays[action.conn]
                self._queue.append((("stay", action.conn, name),
                                    ce.Replied(action.frame["id"], wire(action.frame))))
            elif isinstance(action, server_events.Reply) and action.conn in self._requests:
                name, request_id, fate = self._requests[action.conn]
                if fate == "answered":
                    self._queue.append((name, ce.Replied(request_id, wire(action.frame))))
                elif fate == "lost":
                    self._queue.append((name, ce.RequestFailed(request_id, "reply lost")))
            elif isinstance(action, server_events.Deliver) and action.conn is not None:
                self._push(action)
            elif isinstance(action, server_events.Deliver):
                # one connection per session at a time, as the server's glue keeps it
                self._streams.setdefault((action.address, action.proof), []).append(action.frame)
                self._stream_users[(action.address, action.proof)] = action.user
            elif isinstance(action, server_events.Arm):
                self._arm("server", action.key, action.at)
            elif isinstance(action, server_events.Log):
                self._record("server", action.text)

    # -- IRC clients: what irc_glue does with an IrcSession, in the world's order -------------

    def _irc_ack(self, sim):
        at = sim.session.ping_for_ack(self.now, sim.heard_at)
        if at is not None and (sim.name, "ack") not in self._armed:
            self._arm(sim.name, "ack", at)

    def _irc_does(self, sim, event):
        """One event for an IRC client's session: a parsed line it sent (irc_wire.Message), a
        frame from the core (dict), or its keep-alive timer (ce.Expired)."""
        if not sim.running:
            return
        session = sim.session
        wall = WALL_START + self.now
        if isinstance(event, irc_wire.Message):
            session.from_client(event, wall)
            sim.heard_at = self.now
            self._irc_ack(sim)          # (irc_glue: a PONG may make room for the next PING)
        elif isinstance(event, dict):
            session.from_core(event, wall)
            self._irc_ack(sim)          # irc_glue's end of the pass: a PING after deliveries
        elif event.key == "ack":
            self._irc_ack(sim)          # one held back (irc_session.ACK_PING_GAP_S)
        else:
            session.keepalive()
            self._arm(sim.name, "keepalive", self.now + irc_glue.KEEPALIVE_S)
        lines, session.lines = session.lines, []
        for raw in lines:
            message = irc_wire.parse(raw)
            if message.command == "PING":           # the client answers, as IRC clients do
                self._queue.append((sim.name, irc_wire.parse(b"PONG :" + message.params[-1]
                                                             .encode())))
            else:
                self._record(sim.name, raw.decode().rstrip("\r\n"))
        requests, session.requests = session.requests, []
        for frame in requests:
            self._queue.append(("server", server_events.Request(sim.conn, frame, sim.host,
                                                                irc=True)))
        if session.hangup is not None:
            self._irc_closed(sim)

    def _irc_closed(self, sim):
        """The IRC connection ends: a user still logged in logs out (irc_glue.IrcLink.closed)."""
        if not sim.running:
            return
        sim.running = False
        sim.session.connection_lost()
        for frame in sim.session.requests:
            self._queue.append(("server", server_events.Request(sim.conn, frame, sim.host,
                                                                irc=True)))
        self._queue.append(("server", server_events.Closed(sim.conn)))

    # -- staying connections: one per client, requests, replies and deliveries in order --------

    def _connect(self, sim):
        """The client's staying connection opens; its core hears LinkUp."""
        self._conns += 1
        sim.conn = self._conns
        self._stays[sim.conn] = sim.name
        self._queue.append((sim.name, ce.LinkUp()))

    def _reconnect(self, name):
        sim = self.clients[name]
        if sim.running and sim.conn is None:
            self._connect(sim)

    def _break(self, sim, reconnect=True):
        """What is on its way is lost, what waits for a reply fails, the server hears Closed,
        and the client's glue tries again after its first backoff."""
        conn, sim.conn = sim.conn, None
        del self._stays[conn]
        self._broken.add(conn)
        for request_id in sorted(sim.in_flight):
            self._queue.append((sim.name, ce.RequestFailed(request_id, "connection reset")))
        sim.in_flight.clear()
        if reconnect:           # as stay.StayLink says it, after the failures
            self._queue.append((sim.name, ce.LinkDown("connection reset",
                                                      self.now + stay.RECONNECT_FIRST_S)))
        self._queue.append(("server", server_events.Closed(conn)))
        if reconnect:
            self._arm("link", ("reconnect", sim.name), self.now + stay.RECONNECT_FIRST_S)

    def _stay_request(self, sim, action):
        if sim.conn is None:
            self._queue.append((sim.name, ce.RequestFailed(action.request_id,
                                                               "not connected")))
            return
        sim.in_flight.add(action.request_id)
        request = accepted_event(sim.conn, sim.host, line({**action.frame, "id": action.request_id}))
        if self.faults("cut_stay"):
            # the connection breaks as the request leaves: lost, or taken with its reply lost
            if self.faults.random.random() < 0.5:
                self._queue.append(("server", request))
            self._break(sim)
            return
        self._queue.append((("stay", sim.conn, "server"), request))

    def _push(self, action):
        """A delivery on a staying connection, in order with the replies; none is lost but
        with the connection (the resume sends it again)."""
        name = self._stays.get(action.conn)
        if name is None:
            return
        if self.faults("cut_stay"):
            self._break(self.clients[name])
            return
        self._pushed[action.conn] = action.proof
        self._queue.append((("stay", action.conn, name),
                            ce.Pushed(action.conn, wire(action.frame))))

    def _flush_streams(self):
        keys = list(self._streams)
        if self.faults("delay_delivery"):
            self.faults.random.shuffle(keys)        # other sessions' connections overtake
            keys = keys[1:]                         # and one stays open, to go out later
        for key in keys:
            self._deliver(*key, self._streams.pop(key))

    def _drop_stale(self, address, proof):
        """A delivery to the session failed: numbered frames handed out before the server
        hears of it, still waiting to go, went with the failed connection in the glue (one per
        session at a time: later ones are written to it), and go again at its retry."""
        waiting = self._streams.get((address, proof))
        if waiting:
            self._streams[(address, proof)] = [frame for frame in waiting if "seq" not in frame]

    def _deliver(self, address, proof, frames):
        """What the server's glue does: connect, hello, the frames, bye; or report failure.
        Numbered frames handed out before a failure to the session was heard of go again at
        its retry, in order, not ahead of it (delivery_links.send)."""
        if self.server.retrying(proof):
            frames = [frame for frame in frames if "seq" not in frame]
        if not frames:
            return
        target = next((sim for sim in self.clients.values()
                       if sim.running and not sim.asleep and (sim.host, LISTEN_PORT) == address), None)
        if target is None or self.faults("fail_delivery"):
            self._queue.append(("server", server_events.Undelivered(address, proof, "refused")))
            return
        self._conns += 1
        self._deliveries[self._conns] = {"address": address, "proof": proof, "frames": frames,
                                         "acked": 0, "cut": False}
        sent = list(frames)
        if self.faults("repeat_frame"):
            at = self.faults.random.randrange(len(sent))
            sent.insert(at, sent[at])
        ending = [{"type": "bye"}]
        if self.faults("cut_delivery"):
            sent = sent[:self.faults.random.randrange(len(sent))]
            ending = []
            self._deliveries[self._conns]["cut"] = True
        # the handshake as the glue makes it: the listener's challenge, our hello proving the
        # session (the client's proof back is taken as given: the world is honest)
        nonce = f"w{self._conns}"
        self._queue.append((target.name, ce.Accepted(self._conns, nonce)))
        challenge = line({"type": "challenge", "nonce": nonce})
        hello, _ = protocol.delivery_hello(self._stream_users[(address, proof)], proof,
                                                challenge, "s", self.store.head)
        for frame in [hello, *sent, *ending]:
            self._queue.append((target.name, ce.Incoming(self._conns, wire(frame))))
        self._queue.append((target.name, ce.IncomingClosed(self._conns)))
        self._queue.append(("glue", self._conns))

    def _delivery_closed(self, conn):
        """When a delivery connection ends: cut short, or with a message on it unacknowledged
        (the glue would give up on it when its time runs out), it failed."""
        delivery = self._deliveries.pop(conn)
        unacked = [frame for frame in delivery["frames"]
                   if "seq" in frame and frame["seq"] > delivery["acked"]]
        if unacked or delivery["cut"]:
            reason = "reset" if delivery["cut"] else "no acknowledgement"
            self._queue.append(("server", server_events.Undelivered(
                delivery["address"], delivery["proof"], reason)))

    def _record(self, who, text):
        self.transcript.append(f"{self.now:9.3f} {who} | {text}")


def run_command(world, command):
    """Carry out one script line."""
    if command.startswith("+ "):
        world.advance(float(command[2:]))
        return
    head, _, rest = command.partition(" ")
    if head == "start":
        name, *options = rest.split()
        hosts = [word for word in options if word not in ("stay", "irc")]
        world.start(name, *hosts, stays="stay" in options, irc="irc" in options)
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
    elif rest == "is cut":
        world.cut(head)
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
