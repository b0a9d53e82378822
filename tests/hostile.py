"""Raw-socket peers for the hostile end-to-end tests: a well-behaved user, and anything else.

Hostile traffic comes from 127.0.0.2 (Linux routes all of 127/8 to loopback) so the server sees a
different address from the well-behaved user's 127.0.0.1, as it would on a real network. Every
wait is bounded; nothing sleeps.
"""
import json
import socket
import time

SERVER_HOST = "127.0.0.1"
HOSTILE_HOST = "127.0.0.2"
WAIT_S = 10.0


def open_conn(port, source=HOSTILE_HOST):
    """A blocking connection to the server from `source`, with a bounded time-out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(WAIT_S)
    sock.connect((SERVER_HOST, port))
    return sock


def read_until_closed(sock, timeout_s=WAIT_S):
    """Everything the server sends until it closes; (frames, seconds it took)."""
    sock.settimeout(timeout_s)
    started = time.monotonic()
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()], time.monotonic() - started


def exchange(port, payload, source=HOSTILE_HOST):
    """Send raw bytes then a bye; the server's frames until it closes."""
    sock = open_conn(port, source)
    try:
        sock.sendall(payload + b'\n{"type":"bye"}\n')
        return read_until_closed(sock)[0]
    finally:
        sock.close()


def codes(frames):
    return [frame.get("code", frame.get("type")) for frame in frames]


class GoodUser:
    """A well-behaved client at 127.0.0.1: logs in with a listening port, talks, takes deliveries."""

    def __init__(self, port, name, password):
        self.port = port
        self.name = name
        self.listener = socket.socket()
        self.listener.bind((SERVER_HOST, 0))
        self.listener.listen(16)
        self.listener.settimeout(WAIT_S)
        welcome = self.ask({"type": "login", "user": name, "password": password,
                            "port": self.listener.getsockname()[1]})
        assert welcome["type"] == "welcome", welcome
        self.token = welcome["token"]
        self.sent = 0

    def ask(self, frame):
        [reply] = exchange(self.port, json.dumps(frame).encode(), source=SERVER_HOST)
        return reply

    def served(self, to="seas"):
        """Send one numbered message to `to` and see it accepted: the server still serves us."""
        self.sent += 1
        reply = self.ask({"type": "message", "token": self.token, "to": to,
                          "text": f"good {self.sent}", "mid": f"good-{self.sent}"})
        assert reply["type"] == "ok", reply
        return reply

    def close(self):
        self.listener.close()
