"""End to end, peer to peer: the real server and three real clients on 127.0.0.1, plus raw
sockets in the test playing a stranger. Every wait is bounded; nothing sleeps."""
import json
import pathlib
import re
import socket

import protocol
from line_tags import LineTags
from peer import listener_mac, dialer_mac
from realprocs import ACCOUNTS, WAIT_S, listening_port, login

SECRET = "meet me at the secret p2p place"


def consent(asker, asker_name, target, target_name):
    """`asker` gets `target`'s address with its consent; returns the address line's port."""
    asker.type(f"getaddress {target_name}")
    asker.expect("request sent")
    target.expect(f"Do you agree to have a private talk with {asker_name}? "
                  f"Y {asker_name}/N {asker_name}")
    target.type(f"Y {asker_name}")
    target.expect(f"You agreed to a private talk with {asker_name}.")
    asker.expect("got address!")
    return int(re.search(rf"{target_name} 127\.0\.0\.1 (\d+)",
                         asker.expect(f"{target_name} 127.0.0.1 ") + asker.expect("\n")).group(1))


def stored_bytes(tmp_path):
    """Everything the server keeps on disk: the SQLite file and its journal."""
    return b"".join(path.read_bytes() for path in pathlib.Path(tmp_path, "data").iterdir())


def test_consent_then_private_goes_peer_to_peer_and_the_server_never_sees_it(
        clients, server, tmp_path):
    alice, bob, carol = clients(), clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    login(carol, "google")
    carol.type(f"private seas {SECRET}")
    carol.expect("You don't have seas's address. Type getaddress seas first.")
    assert consent(alice, "columbia", bob, "seas") == listening_port(server, "seas")
    alice.type(f"private seas {SECRET}")
    bob.expect(f"columbia (private): {SECRET}")
    alice.type("private seas and  a second one on the same link")
    bob.expect("columbia (private): and  a second one on the same link")
    # a refusal reaches the asker only
    carol.type("getaddress seas")
    bob.expect("Do you agree to have a private talk with google? Y google/N google")
    bob.type("n google")
    carol.expect("seas refused to give you their address.")
    alice.type("online")                  # a round trip through the server after the privates
    alice.expect("google")
    server.stop()
    assert SECRET not in server.log() and "second one" not in server.log()
    data = stored_bytes(tmp_path)
    assert SECRET.encode() not in data and b"second one" not in data
    assert "Refused" not in bob.output


class Lines:
    """JSON frames read from a blocking socket with a time-out, one at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.tags = None        # once the handshake proved both ends: each line's is checked

    def next(self):
        """The next frame, or None once the other side has closed."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        if self.tags is not None:
            line = self.tags.untag(line)
            assert line is not None, "a line without its tag"
        return json.loads(line)

    def until_closed(self):
        """Every frame up to the other side's close."""
        frames = []
        while (frame := self.next()) is not None:
            frames.append(frame)
        return frames


def dial(port):
    """Connect to a client's listening port as a peer -> (socket, its Lines, the nonce)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    lines = Lines(sock)
    challenge = lines.next()
    assert challenge["type"] == "challenge"
    return sock, lines, challenge["nonce"]


def send(sock, *frames, tags=None):
    """Write `frames` on `sock`, each tagged with `tags` when given."""
    lines = (json.dumps(frame).encode() + b"\n" for frame in frames)
    sock.sendall(b"".join(lines if tags is None else map(tags.tag, lines)))


class RawUser:
    """A user logged in by the test itself over raw sockets, to learn a real key: it listens
    for the server's deliveries on its own port."""

    def __init__(self, server_port, name):
        self.server_port = server_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT_S)
        welcome = self.request({"type": "login", "user": name, "password": ACCOUNTS[name],
                                "port": self.listener.getsockname()[1]})
        assert welcome["type"] == "welcome", welcome
        self.token = welcome["token"]
        self.key = welcome["proof"]             # the session's key, to prove deliveries back

    def request(self, frame):
        with socket.create_connection(("127.0.0.1", self.server_port), timeout=WAIT_S) as sock:
            send(sock, frame, {"type": "bye"})
            return Lines(sock).next()

    def next_delivery(self, kind):
        """Accept the server's deliveries until one of type `kind` arrives."""
        while True:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(WAIT_S)
                send(conn, {"type": "challenge", "nonce": "mine"})
                lines, frames = Lines(conn), []
                hello = lines.next()
                send(conn, {"type": "ok", "mac": protocol.mac(
                    self.key, protocol.DELIVERY_CLIENT_LABEL, "mine", hello["nonce"])})
                lines.tags = LineTags(self.key, "mine", hello["nonce"], dialer=False)
                while not frames or frames[-1]["type"] != "bye":   # then the listener closes
                    frames.append(lines.next())
            for frame in frames:
                if frame["type"] == kind:
                    return frame


def test_a_stranger_with_a_forged_or_replayed_proof_is_refused(clients, server):
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    bob_port = listening_port(server, "seas")
    consent(alice, "columbia", bob, "seas")

    # forged: claims to be columbia, who has consent, without knowing the key
    sock, lines, nonce = dial(bob_port)
    send(sock, {"type": "peer_hello", "from": "columbia", "nonce": "d1",
                "mac": dialer_mac("guessed", "columbia", "seas", nonce)},
         {"type": "private", "from": "columbia", "text": "forged words"})
    assert [f.get("code") for f in lines.until_closed()] == ["not_allowed"]
    sock.close()
    bob.expect("Refused a private connection from someone claiming to be columbia: "
               "the proof of identity was wrong.")

    # frames before any proof
    sock, lines, _ = dial(bob_port)
    send(sock, {"type": "private", "from": "columbia", "text": "no proof words"})
    assert [f.get("code") for f in lines.until_closed()] == ["not_allowed"]
    sock.close()
    bob.expect("Refused a private message from a peer that did not prove who it is.")

    # replayed: google really gets consent, proves itself once, and that hello is replayed
    google = RawUser(server.port, "google")
    assert google.request({"type": "getaddress", "token": google.token,
                           "user": "seas"})["type"] == "ok"
    bob.expect("Do you agree to have a private talk with google?")
    bob.type("y google")
    address = google.next_delivery("address")
    assert address["port"] == bob_port
    # the key is sealed with the session's proof: the delivery crosses the network in plain
    # TCP, and a trial's eavesdropper forged a private message with the key it read there
    assert "key" not in address
    key = protocol.unseal(address["sealed"], google.key, protocol.ADDRESS_KEY_LABEL, "seas",
                          address["salt"])
    assert key is not None and key not in json.dumps(address)
    sock, lines, nonce = dial(bob_port)
    real_hello = {"type": "peer_hello", "from": "google", "nonce": "d1",
                  "mac": dialer_mac(key, "google", "seas", nonce)}
    send(sock, real_hello)
    assert lines.next() == {"type": "ok", "mac": listener_mac(key, "seas", "google", "d1")}
    # from the proofs on, every line both ways carries its tag (line_tags.py)
    tags = lines.tags = LineTags(key, nonce, "d1", dialer=True)
    send(sock, {"type": "private", "from": "google", "text": "genuine words"}, tags=tags)
    assert lines.next() == {"type": "ok"}
    bob.expect("google (private): genuine words")
    send(sock, {"type": "bye"}, tags=tags)
    assert lines.until_closed() == []                 # the listener closes first
    sock.close()
    # a line added on the way to a proven link, without the tag only the key can make (the
    # hello and the words before it were google's own): closed, and never shown
    sock, lines, nonce = dial(bob_port)
    send(sock, {**real_hello, "mac": dialer_mac(key, "google", "seas", nonce)})
    assert lines.next()["type"] == "ok"
    tags = LineTags(key, nonce, "d1", dialer=True)
    send(sock, {"type": "private", "from": "google", "text": "first words"}, tags=tags)
    send(sock, {"type": "private", "from": "google", "text": "added words"})
    lines.tags = tags
    assert lines.next() == {"type": "ok"}           # the first, acknowledged
    assert lines.until_closed() == []               # the added one: closed, unanswered
    sock.close()
    bob.expect("google (private): first words")
    replay, lines, _ = dial(bob_port)
    send(replay, real_hello, {"type": "private", "from": "google", "text": "replayed words"})
    assert [f.get("code") for f in lines.until_closed()] == ["not_allowed"]
    replay.close()
    bob.expect("Refused a private connection from someone claiming to be google: "
               "the proof of identity was wrong.")

    alice.type(f"private seas {SECRET}")         # the real peer still gets through
    bob.expect(f"columbia (private): {SECRET}")
    for words in ("forged words", "no proof words", "replayed words", "added words"):
        assert words not in bob.output
    # each refused connection was reported once
    assert bob.output.count("the proof of identity was wrong.") == 2


def test_a_peer_that_has_exited_is_reported_and_its_message_never_goes_through_the_server(
        clients, server):
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    consent(alice, "columbia", bob, "seas")
    alice.type("private seas while you are here")
    bob.expect("columbia (private): while you are here")
    bob.kill()                          # gone without a logout: the server does not know yet
    alice.type("private seas are you still there?")
    # "Not delivered to seas: ..." once the link's loss is seen; written to the link before
    # that, the message may have reached the peer as far as alice can tell: "Perhaps not ..."
    alice.expect("delivered to seas: are you still there?")
    alice.expect("To leave it for seas through the server, type message seas <text>.")
    again = clients()
    login(again, "seas")
    alice.type("message seas marker")
    again.expect("columbia: marker")
    assert "are you still there?" not in again.output             # the server never saw it
    assert "are you still there?" not in server.log()
    # the new login revokes the old address: alice is told to ask again
    alice.expect("seas's address is no longer valid. Type getaddress seas to ask again.")
    alice.type("private seas hello?")
    alice.expect("You don't have seas's address. Type getaddress seas first.")


def test_diagnostics_stay_off_the_screen_unless_asked_for(clients, server):
    quiet, loud = clients(), clients("--verbose")
    login(quiet, "columbia")
    login(loud, "seas")
    for user in ("columbia", "seas"):
        with socket.create_connection(("127.0.0.1", listening_port(server, user)), timeout=WAIT_S) as s:
            s.sendall(b'{"type":"hello","proof":"forged"}\n')
            while s.recv(4096):     # the listener refuses and closes
                pass
    loud.expect("refused delivery connection")
    quiet.type("online")
    quiet.expect("seas")
    assert "refused" not in quiet.output
