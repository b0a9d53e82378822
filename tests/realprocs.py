"""Real server and client processes for the end-to-end tests, with bounded waits and no sleeps.

The server runs with port 0 and says its port in its log; clients run in pseudo-terminals (so
they see a real terminal: no echo of passwords, Ctrl-C as SIGINT) or read their input from a file.
Every wait polls a descriptor with a deadline; nothing sleeps for a fixed time.
"""
import contextlib
import json
import os
import pty
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

import protocol
from line_tags import LineTags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT_S = 10.0
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


def _deadline(timeout_s):
    return time.monotonic() + timeout_s


class ServerProcess:
    """`python3 server.py 0 ...` with its log in a file; .port is read from the log."""

    def __init__(self, tmp_path, *args, credentials=None, descriptors=None):
        """`descriptors`: the server's descriptor limit (ulimit -n), if not this process's."""
        self.log_path = tmp_path / "server.log"
        cred = credentials or os.path.join(ROOT, "credential.txt")
        self._log = open(self.log_path, "wb")
        limit = None if descriptors is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors)))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "server.py"), "0", "--host", "127.0.0.1",
             "--credentials", str(cred), "--data-dir", str(tmp_path / "data"), *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=ROOT,
            preexec_fn=limit)
        match = self.wait_log(r"listening on [\d.]+:(\d+)")
        self.port = int(match.group(1))

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, timeout_s=WAIT_S):
        """Wait until the log matches `pattern`; returns the match."""
        end = _deadline(timeout_s)
        while time.monotonic() < end:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
            # the pause between polls of the log for an event, bounded by its deadline
            select.select([], [], [], 0.02)
        raise AssertionError(f"server log never matched {pattern!r}:\n{self.log()}")

    def stop(self):
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class PtyClient:
    """`python3 client.py` in a pseudo-terminal: type() lines, expect() text."""

    def __init__(self, port, *args, host="127.0.0.1"):
        argv = [sys.executable, os.path.join(ROOT, "client.py"), host, str(port), *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:       # the child: the pty is its controlling terminal
            os.chdir(ROOT)
            # a terminal that draws (a CI's TERM may be "dumb", or none): the line editor's
            os.execve(sys.executable, argv, {**os.environ, "TERM": "xterm"})
        # (another client forked later must not hold this terminal open: closing it is a
        # hang-up only once no process holds its other end)
        os.set_inheritable(self.fd, False)
        self.output = ""
        self._seen = 0          # expect() searches only what came after the last match
        self.status = None

    def type(self, text):
        os.write(self.fd, text.encode() + b"\r")

    def press(self, data):
        os.write(self.fd, data)

    def _read(self, timeout_s):
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:         # EIO: the child has gone and the pty is closed
            return None
        if not chunk:
            return None
        self.output += _CONTROL.sub("", chunk.decode("utf-8", "replace"))
        return True

    def expect(self, text, timeout_s=WAIT_S):
        """Wait until `text` appears after the previous match; returns everything up to it."""
        end = _deadline(timeout_s)
        while True:
            found = self.output.find(text, self._seen)
            if found >= 0:
                before = self.output[self._seen:found + len(text)]
                self._seen = found + len(text)
                return before
            left = end - time.monotonic()
            gone = left > 0 and self._read(min(left, 0.5)) is None
            if left <= 0 or (gone and self.output.find(text, self._seen) < 0):
                raise AssertionError(f"never saw {text!r}; output so far:\n{self.output}")

    def wait_exit(self, timeout_s=WAIT_S):
        """Wait for the client to exit (reading its output meanwhile); returns its exit status."""
        end = _deadline(timeout_s)
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                while self._read(0):
                    pass
                os.close(self.fd)
                return self.status
            self._read(0.05)
        raise AssertionError(f"client did not exit; output:\n{self.output}")

    def kill(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self.fd)
            except OSError:
                pass
            self.status = -9


ACCOUNTS = {"columbia": "116bway", "seas": "summerisover", "google": "hasglasses",
            "facebook": "wastingtime"}


def login(client, name, password=None):
    """Log a PtyClient in as `name` the way a person would, prompt by prompt."""
    client.expect("Please enter username:")
    client.type(name)
    client.expect("Please enter password:")
    client.type(password or ACCOUNTS[name])
    client.expect("You have successfully logged in.")


def listening_port(server, user):
    """A client's listening port, from the server's "... logged in from HOST:PORT" log line."""
    return int(server.wait_log(rf"{user} logged in from 127\.0\.0\.1:(\d+)").group(1))


def run_file_client(port, script_text, tmp_path, timeout_s=WAIT_S, host="127.0.0.1",
                    options=()):
    """Run a client whose standard input is a regular file; returns (exit status, output)."""
    script = tmp_path / "input.txt"
    script.write_text(script_text)
    with open(script, "rb") as stdin:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "client.py"), host, str(port),
                               *options], stdin=stdin, capture_output=True, timeout=timeout_s, cwd=ROOT)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


# -- a server started again and again, and raw short connections to it ----------------------

def start_server(tmp_path, port, *options):
    """The real server on `port` (0: any) with its data in tmp_path/data, started again on
    the same directory as often as a test likes -> (process, port) once it listens."""
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "server.py"), str(port),
                             "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data"),
                             *options],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT,
                            preexec_fn=_signals_as_in_a_terminal)
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


def _signals_as_in_a_terminal():
    """The stop signals as a terminal's shell leaves them: the tests may run under `nohup`
    or `&`, whose ignored SIGHUP and SIGINT the server keeps, as it should (a helper's run in
    the background failed the hang-up tests)."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


def wait_log(tmp_path, text, timeout_s=WAIT_S):
    """Wait until the log of start_server's server holds `text` (bounded)."""
    end = time.monotonic() + timeout_s
    while text not in (tmp_path / "server.log").read_text(errors="replace"):
        assert time.monotonic() < end, f"the server never logged {text!r}"
        select.select([], [], [], 0.02)     # a bounded pause between looks at the log


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


def welcome_of(port, user, password, listen_port=9):
    """Log in on a short connection -> the welcome frame, or None."""
    replies = exchange(port, [{"type": "login", "user": user, "password": password,
                               "port": listen_port, "id": "login"}])
    return replies[0] if replies and replies[0].get("type") == "welcome" else None


def token_of(port, user, password, listen_port=9):
    """Log in on a short connection -> the token, or None."""
    welcome = welcome_of(port, user, password, listen_port)
    return None if welcome is None else welcome["token"]


def take_deliveries(port, user, password, count, timeout_s=WAIT_S):
    """Log `user` in with a listening port of ours and take its deliveries as client.py does
    (the handshake that proves the session both ways, then acknowledging each numbered
    message) until `count` messages came -> their texts, in the order they came (repeats
    included: the caller judges them)."""
    shown = []
    end = time.monotonic() + timeout_s
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout_s)
        welcome = welcome_of(port, user, password, listener.getsockname()[1])
        assert welcome is not None
        while len(shown) < count and time.monotonic() < end:
            conn, _ = listener.accept()
            with conn, conn.makefile("rwb") as stream:
                send = _sender(stream)
                send({"type": "challenge", "nonce": "take"})
                tags = None         # every line is tagged once the session is proven both ways
                for line in stream:
                    if tags is not None:
                        line = tags.untag(line.rstrip(b"\n"))
                        assert line is not None, "a delivery without its tag"
                    frame = json.loads(line)
                    if frame["type"] == "hello":
                        send({"type": "ok", "mac": protocol.mac(
                            welcome["proof"], protocol.DELIVERY_CLIENT_LABEL, "take",
                            frame["nonce"])})
                        tags = LineTags(welcome["proof"], "take", frame["nonce"], dialer=False)
                        send = _sender(stream, tags)
                    elif frame["type"] == "bye":
                        break
                    elif frame["type"] in ("message", "broadcast") and "seq" in frame:
                        shown.append(frame["text"])
                        send({"type": "ack", "seq": frame["seq"]})
    return shown


def _sender(stream, tags=None):
    """A function that writes a frame on `stream`, tagged with `tags` if given."""
    def send(frame):
        line = json.dumps(frame).encode() + b"\n"
        stream.write(line if tags is None else tags.tag(line))
        stream.flush()
    return send


@contextlib.contextmanager
def mounted_tmpfs(where, megabytes=2):
    """A tmpfs of `megabytes` MiB at the directory `where` (made) for the block, which gets
    resize(megabytes) to give it room; mounting one needs root: elsewhere the test skips."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                              str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'not root'}")

    def resize(size):
        subprocess.run(["mount", "-o", f"remount,size={size}m", str(where)], check=True)
    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
