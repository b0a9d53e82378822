"""The real server stopped (SIGSTOP, as Ctrl-Z does) and continued across its users' time-out:
the heartbeats they sent meanwhile keep their sessions."""
import json
import select
import signal
import socket
import time

from realprocs import WAIT_S, start_server, token_of as login

TIMEOUT_S = 3.0


def pause_until(at):
    """Wait until monotonic time `at`: the scenario is a stop of a given length, in time."""
    select.select([], [], [], max(0.0, at - time.monotonic()))


def test_heartbeats_sent_while_the_server_was_stopped_keep_the_sessions(tmp_path):
    """A trial's server, stopped from before its users' heartbeats until 0.1-0.4 s past their
    time-out, timed them all out: the wait that the stop overran returned nothing, and the
    time-out check fired before the heartbeats waiting to be accepted were read."""
    proc, port = start_server(tmp_path, 0, "--timeout", str(TIMEOUT_S))
    beats = []
    try:
        tokens = [login(port, "columbia", "116bway")]
        logged_at = time.monotonic()        # (the server's check is due TIMEOUT_S after)
        tokens.append(login(port, "seas", "summerisover"))
        pause_until(logged_at + TIMEOUT_S / 2)
        proc.send_signal(signal.SIGSTOP)
        for token in tokens:        # the kernel takes the connections: they wait to be read
            beat = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
            beat.sendall(json.dumps({"type": "heartbeat", "token": token}).encode() + b"\n")
            beats.append(beat)
        pause_until(logged_at + TIMEOUT_S + 0.1)     # continued just past the time-out
        proc.send_signal(signal.SIGCONT)
        answers = [json.loads(beat.makefile("rb").readline()) for beat in beats]
        assert [answer["type"] for answer in answers] == ["ok", "ok"], answers
        assert "timed out" not in (tmp_path / "server.log").read_text()
    finally:
        for beat in beats:
            beat.close()
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()
