"""A seeded fuzzer: 100,000 mutated and random frames against the chat core (through
protocol.decode, as the glue feeds it) and 100,000 against the reactor's framing, then a
socket-level run against the real server while a real client keeps being served.

No exception may escape, every request gets exactly one reply, and a stored message is never
lost or changed. The seeds are fixed, so a failure repeats; FUZZ_SEED=n tries another."""
import json
import os
import random
import socket

import protocol
from hostile import GoodUser, open_conn
from reactor import MAX_FRAME_BYTES, Handler, Reactor
from timers import VirtualClock
from realprocs import PtyClient, ServerProcess
from chat_server import ChatServer, Settings
from server_events import Expired, Reply, Undelivered, accepted_event, delivery_event
from storage import Store

SEED = int(os.environ.get("FUZZ_SEED", "6"))
CORE_FRAMES = 100_000
FRAMING_FRAMES = 100_000
ACCOUNTS = {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c", "dave": "pw-d"}
HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
WEIRD = [None, True, False, 0, -1, 2 ** 70, 1.5, float("1e308"), "", "x" * 5000, "\x00",
         "\x1b[2J", "\u202e", "\ud800", [], [1, [2]], {}, {"type": "login"}, "alice", "bob",
         "carol", "s1", 65536, 4000]
KINDS = ["check_user", "login", "message", "broadcast", "online", "block", "unblock",
         "heartbeat", "logout", "getaddress", "consent", "bye", "ack", "resume", "hello", "?"]
FIELDS = ["type", "user", "password", "port", "token", "to", "text", "mid", "id", "agree",
          "seq", "ref", "stay"]


class CoreFuzz:
    """Drives a ChatServer with seeded hostile traffic while bob's stored messages must last."""

    def __init__(self, rng, settings):
        self.rng = rng
        self.store = Store(":memory:")
        self.server = ChatServer(dict(ACCOUNTS), self.store, settings)
        self.now = 0.0
        self.timers = {}
        self.tokens, self.proofs = [], []
        self.conn = 0
        # bob's stored messages, sent by alice before the fuzz; bob's password is never used
        alice = self.welcome(self.request({"type": "login", "user": "alice", "password": "pw-a",
                                           "port": 7}, HOSTS[0]))
        for n in range(20):
            self.request({"type": "message", "token": alice, "to": "bob", "text": f"kept {n}"},
                         HOSTS[0])
        self.kept = self.store.waiting("bob")

    def welcome(self, actions):
        for action in actions:
            if isinstance(action, Reply) and action.frame.get("type") == "welcome":
                self.tokens.append(action.frame["token"])
                if "proof" in action.frame:     # (a staying login has none)
                    self.proofs.append(action.frame["proof"])
                return action.frame["token"]
        return None

    def request(self, frame, host):
        return self.feed(protocol.encode(frame)[:-1], host)

    def feed(self, line, host):
        """One line as the glue takes it (accepted_event); one reply, but for the frames about
        the connection itself: bye closes it, and an ack is answered only when it is bad."""
        self.conn += 1
        event = accepted_event(self.conn, host, line)
        if event is None:
            assert not line.strip(), line           # only a blank line is skipped
            return []
        actions = self.handle(event)
        replies = [a for a in actions if isinstance(a, Reply)]
        about_the_connection = getattr(event, "frame", {}).get("type") in ("bye", "ack")
        assert len(replies) == 1 or (about_the_connection and not replies), (line, actions)
        assert all(reply.conn == self.conn for reply in replies)
        for reply in replies:
            json.dumps(reply.frame)        # every reply can go on the wire
        self.welcome(actions)
        return actions

    def handle(self, event):
        actions = self.server.handle(event, self.now)
        for action in actions:
            if hasattr(action, "key") and hasattr(action, "at"):
                self.timers[action.key] = action.at
        return actions

    def tick(self):
        self.now += self.rng.choice([0.0, 0.0, 0.001, 0.1, 1.0, 5.0])
        for key, at in sorted(self.timers.items(), key=lambda item: item[1]):
            if at <= self.now:
                del self.timers[key]
                self.handle(Expired(key))

    def valid_frame(self):
        """A session request with every field of the right type, for a live-looking token."""
        rng = self.rng
        names = list(ACCOUNTS) + ["nobody"]
        frame = {"type": rng.choice(KINDS[2:11]), "token": self.tokens[-rng.randint(1, min(3, len(self.tokens)))],
                 "to": rng.choice(names), "user": rng.choice(names), "agree": rng.random() < 0.5,
                 "text": rng.choice(["hi", "\x1b[31mred", "x" * 4001, "a\nb"]),
                 "id": rng.randint(1, 9)}
        if rng.random() < 0.5:
            frame["mid"] = rng.choice([f"m-{rng.randint(1, 30)}", f"m{rng.randint(1, 30)}"])
        return frame

    def frame(self):
        """A frame that is almost right: a known kind with some fields wrong or strange."""
        rng = self.rng
        if self.tokens and rng.random() < 0.4:
            frame = self.valid_frame()
            if rng.random() < 0.3:
                frame[rng.choice(FIELDS)] = rng.choice(WEIRD)
            return frame
        frame = {"type": rng.choice(KINDS)}
        for name in rng.sample(FIELDS, rng.randint(0, 6)):
            frame[name] = rng.choice(WEIRD)
        if rng.random() < 0.5 and self.tokens:
            frame["token"] = rng.choice(self.tokens)
        if frame["type"] == "login" and rng.random() < 0.6:
            frame.update(user=rng.choice(["alice", "carol", "dave"]), port=rng.randint(1, 65535),
                         password=rng.choice(["pw-a", "pw-c", "pw-d", "nope"]))
        if rng.random() < 0.5:
            frame["type"] = rng.choice(WEIRD + KINDS) if rng.random() < 0.2 else frame["type"]
        return frame

    def line(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        if roll < 0.2:
            return rng.choice([b"[]", b"1", b'"x"', b"null", b"{", b"{}", b'{"type":1}',
                               b"\xff", b"[" * 5000, b'{"a":' * 2000])
        try:
            data = json.dumps(self.frame(), ensure_ascii=False).encode("utf-8", "surrogatepass")
        except ValueError:
            data = b"{}"
        if roll < 0.5 and data:          # flip, cut or splice bytes of a real frame
            data = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(data))
                how = rng.random()
                if how < 0.4:
                    data[at] = rng.getrandbits(8)
                elif how < 0.7:
                    del data[at:at + rng.randint(1, 8)]
                    if not data:
                        data = bytearray(b"{")
                else:
                    data[at:at] = rng.choice([b"\x00", b'"', b"\\", b"{", b"}", b",", b"\xc3"])
            data = bytes(data).replace(b"\n", b" ")
        return data

    def other_event(self):
        rng = self.rng
        proof = rng.choice(self.proofs + ["forged"])
        if rng.random() < 0.5:
            # as a client's listener sends it, read as the glue reads it: out of range is nothing
            seq = rng.choice([0, 1, -5, 10 ** 9, 3, 2 ** 63, 2 ** 70, 1.5, True])
            return delivery_event(proof, protocol.encode({"type": "ack", "seq": seq})[:-1])
        return Undelivered((rng.choice(HOSTS), rng.randint(1, 9)), proof,
                           rng.choice(["refused", "reset", "eof"]))


def run_core_fuzz(seed, count, settings):
    fuzz = CoreFuzz(random.Random(seed), settings)
    for _ in range(count):
        fuzz.tick()
        if fuzz.rng.random() < 0.02:
            event = fuzz.other_event()
            if event is not None:
                fuzz.handle(event)
        else:
            fuzz.feed(fuzz.line(), fuzz.rng.choice(HOSTS))
    # bob never logged in, so nothing could acknowledge his messages: all still there, unchanged
    assert fuzz.store.waiting("bob")[:len(fuzz.kept)] == fuzz.kept
    return fuzz


def test_the_core_survives_100k_hostile_frames_and_keeps_what_it_stored():
    # limits off for most of the run so frames reach the deep code, then the production limits
    run_core_fuzz(SEED, CORE_FRAMES * 4 // 5,
                  Settings(user_rate_per_s=0, address_rate_per_s=0, failed_logins_per_s=0))
    fuzz = run_core_fuzz(SEED + 1, CORE_FRAMES // 5, Settings(tokens_bound_to_host=True))
    assert len(fuzz.tokens) > 1          # the fuzz got past login, into session requests


class Collect(Handler):
    def __init__(self):
        self.frames, self.oversize, self.closed = [], 0, []

    def on_frame(self, conn, line):
        self.frames.append(line)

    def on_oversize(self, conn):
        self.oversize += 1

    def on_closed(self, conn, reason):
        self.closed.append(reason)


def test_the_framing_splits_100k_random_frames_in_random_chunks_like_a_reference():
    rng = random.Random(SEED)
    lines = []
    for _ in range(FRAMING_FRAMES):
        roll = rng.random()
        if roll < 0.0005:
            size = rng.choice([MAX_FRAME_BYTES - 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES * 3])
            lines.append(b"z" * size)
        elif roll < 0.3:
            lines.append(bytes(rng.choice(b"\x00\x01\xff{}[]\":,ab \r") for _ in range(rng.randint(0, 30))))
        else:
            lines.append(protocol.encode({"type": "x", "n": rng.random()})[:-1])
    stream = b"\n".join(lines) + b"\n"
    reactor = Reactor(VirtualClock(), frame_time_s=None)
    ours, theirs = socket.socketpair()
    collect = Collect()
    conn = reactor.watch(ours, collect)
    at = 0
    while at < len(stream):              # chunks of 1 byte to 3 reads' worth
        size = rng.choice([1, 7, 100, 4096, 65536, 200_000])
        reactor._split_frames(conn, stream[at:at + size])
        at += size
    expected = [line for line in lines if len(line) < MAX_FRAME_BYTES]
    assert collect.frames == expected
    assert collect.oversize == len(lines) - len(expected)
    assert collect.closed == []
    ours.close()
    theirs.close()


# -- against the real server process --------------------------------------------------------

HOSTILE_CONNECTIONS = 3000


def hostile_bytes(rng, fuzz):
    roll = rng.random()
    if roll < 0.05:
        return b"x" * rng.choice([70_000, 140_000]) + b"\n"
    if roll < 0.1:
        return b'{"type":"check_user","us'                  # never ends
    if roll < 0.15:
        return b""                                          # opens, says nothing, goes
    return b"\n".join(fuzz.line() for _ in range(rng.randint(1, 5))) + b"\n"


def test_the_real_server_serves_a_real_client_through_thousands_of_hostile_connections(tmp_path):
    server = ServerProcess(tmp_path, "--frame-time", "2")
    rng = random.Random(SEED)
    fuzz = CoreFuzz(random.Random(SEED), Settings())     # only its frame generator is used
    client = PtyClient(server.port)
    try:
        client.expect("Please enter username:")
        client.type("columbia")
        client.expect("Please enter password:")
        client.type("116bway")
        client.expect("You have successfully logged in.")
        sent = []
        for number in range(HOSTILE_CONNECTIONS):
            sock = open_conn(server.port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0"
                            if rng.random() < 0.3 else b"\0" * 8)    # some end with a reset
            try:
                sock.sendall(hostile_bytes(rng, fuzz))
            except OSError:
                pass
            sock.close()
            if number % 300 == 0:       # the real client is served throughout
                sent.append(f"still here {number}")
                client.type(f"message seas {sent[-1]}")
                client.expect("seas is offline; your message will be delivered when they log in.")
        good = GoodUser(server.port, "google", "hasglasses")     # and a new user gets in
        good.close()
    finally:
        client.kill()
        assert server.stop() == 0, server.log()[-3000:]
    assert "Traceback" not in server.log() and "error in callback" not in server.log()
    store = Store(str(tmp_path / "data" / "chat.sqlite3"))
    stored = [json.loads(line)["text"] for _, line in store.waiting("seas")]
    store.close()
    assert stored == sent        # every accepted message kept, in order, unchanged
