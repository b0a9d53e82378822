"""Hostile input against a real client's listening port: strangers get nothing shown, the
client goes on working, and a well-behaved delivery still arrives.

The listener trusts a connection only after the server's hello (with the login's proof) or a
peer's proof of consent; anything else is closed without an answer (none is safe to give a
stranger), logged for --verbose, and never reaches the screen."""
import socket

import pytest

from realprocs import WAIT_S, listening_port, login

HOSTILE = [
    b"\xff\xfe not utf-8\n",
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'{"type":"message","from":"seas","text":"fake: before any hello"}\n',
    b'{"type":"hello","proof":"forged"}\n{"type":"message","from":"seas","text":"fake"}\n',
    b'{"type":"peer_hello","from":"seas","mac":"00"}\n',
    b'{"type":"private","from":"seas","text":"fake private"}\n',
    b"\x00\x01\x1b[2J\x1b]0;pwned\x07\n",
    b'{"type":"hello","proof":"' + b"x" * 100_000 + b'"}\n',
]


def read_until_closed(sock):
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
def test_a_stranger_on_the_listening_port_is_closed_and_nothing_is_shown(clients, server, payload):
    alice, bob = clients("--verbose"), clients()
    login(alice, "columbia")
    login(bob, "seas")
    alice.expect("seas has logged in.")
    with socket.create_connection(("127.0.0.1", listening_port(server, "columbia")),
                                  timeout=WAIT_S) as stranger:
        stranger.sendall(payload)
        answer = read_until_closed(stranger)        # closed by the client, within its limits
    assert b'"type":"message"' not in answer
    alice.expect("refused")                          # logged (shown only with --verbose)
    bob.type("message columbia the real one")
    shown = alice.expect("seas: the real one")       # the client went on working
    assert "fake" not in alice.output and "pwned" not in alice.output
    assert "\x1b]0;" not in shown
