"""End to end: the real server and real clients in pseudo-terminals, on 127.0.0.1.

The `server` and `clients` fixtures are in conftest.py."""
import os
import signal
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from realprocs import (ACCOUNTS, ROOT, WAIT_S, exchange, login, run_file_client, take_deliveries,
                       token_of)

def test_login_message_and_presence(clients, server):
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    alice.expect("seas has logged in.")
    alice.type("message seas hello  there")
    bob.expect("columbia: hello  there")
    bob.type("online")
    bob.expect("columbia")
    assert "116bway" not in server.log()          # never a password in the log
    assert "hello  there" not in server.log()     # never a message body


def test_password_is_not_echoed(clients):
    alice = clients()
    alice.expect("Please enter username:")
    alice.type("columbia")
    alice.expect("Please enter password:")
    alice.type("116bway")
    typed = alice.expect("You have successfully logged in.")
    assert "116bway" not in typed


def log_in_and_list(write, until):
    """Log in as columbia, each line written once `until` has seen its prompt, then `online`
    and its answer."""
    for prompt, typed in ((b"Please enter username:", b"columbia\n"),
                          (b"Please enter password:", b"116bway\n"),
                          (b"You have successfully logged in.", b"online\n")):
        until(prompt)
        write(typed)
    until(b"No other users are online.")


def test_password_is_not_echoed_when_only_the_keyboard_is_a_terminal(server):
    """`client.py | tee log`: the keyboard is a terminal, the output a pipe, and the
    terminal's own echo showed the password (a trial's); it is off for the password only."""
    keyboard, keys = pty.openpty()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "client.py"), "127.0.0.1",
                             str(server.port)], stdin=keys, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    os.close(keys)
    echoed, shown = b"", b""

    def until(text):
        nonlocal echoed, shown
        end = time.monotonic() + WAIT_S
        while text not in shown:
            assert time.monotonic() < end and proc.poll() is None, (shown, echoed)
            ready = select.select([keyboard, proc.stdout], [], [], 0.1)[0]
            if keyboard in ready:
                echoed += os.read(keyboard, 4096)
            if proc.stdout in ready:
                shown += os.read(proc.stdout.fileno(), 4096)
    try:
        log_in_and_list(lambda typed: os.write(keyboard, typed), until)
        assert b"columbia" in echoed and b"online" in echoed    # the echo is on, but...
        assert b"116bway" not in echoed                         # ... not for the password
    finally:
        proc.kill()
        proc.wait()
        os.close(keyboard)


def test_a_dumb_terminal_gets_no_cursor_moves_and_no_password_echo(server):
    """An Emacs shell (TERM=dumb) read "^M^[[JPlease enter username:" (a trial's): there the
    terminal's own line editing is used, as for output that goes elsewhere."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "client.py", "127.0.0.1", str(server.port)],
                  {**os.environ, "TERM": "dumb"})
    shown = b""

    def until(text):
        nonlocal shown
        end = time.monotonic() + WAIT_S
        while text not in shown:
            assert time.monotonic() < end, shown
            if select.select([fd], [], [], 0.1)[0]:
                shown += os.read(fd, 4096)
    try:
        log_in_and_list(lambda typed: os.write(fd, typed), until)
        assert b"\x1b" not in shown and b"116bway" not in shown and b"online" in shown
        # Ctrl-C: the kernel echoes ^C, and the row ends there (a trial's shell prompt stuck
        # to it)
        os.write(fd, b"\x03")
        until(b"^C\r\n")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def test_a_run_whose_output_cannot_be_written_ends_with_status_1(server, tmp_path):
    """(a trial's run with its output to a full disk said so, and exited 0)"""
    script = tmp_path / "input.txt"
    script.write_text("columbia\n116bway\nonline\n")
    with open(script, "rb") as stdin, open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "client.py", "127.0.0.1", str(server.port)],
                              stdin=stdin, stdout=full, stderr=subprocess.PIPE, cwd=ROOT,
                              timeout=WAIT_S)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("client.py: cannot write to standard output (No "
                                           "space left on device)")


def test_a_run_whose_output_fails_acknowledges_nothing_it_could_not_show(server):
    """(a trial's client, its output's reader gone, went on acknowledging what it could no
    longer show: lost for good) It logs out instead, and the message waits on the server."""
    client = subprocess.Popen([sys.executable, "client.py", "127.0.0.1", str(server.port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT)
    try:
        client.stdin.write(b"google\nhasglasses\n")
        client.stdin.flush()
        shown, end = b"", time.monotonic() + WAIT_S
        while b"successfully logged in" not in shown:
            assert time.monotonic() < end, shown
            if select.select([client.stdout], [], [], 0.1)[0]:
                shown += os.read(client.stdout.fileno(), 4096)
        client.stdout.close()                   # the reader goes: the next write fails
        token = token_of(server.port, "columbia", ACCOUNTS["columbia"])
        exchange(server.port, [{"type": "message", "token": token, "to": "google",
                                "text": "shown to no one"}])
        assert client.wait(timeout=WAIT_S) == 1
        assert b"cannot write to standard output" in client.stderr.read()
    finally:
        client.kill()
        client.wait()
    assert take_deliveries(server.port, "google", ACCOUNTS["google"], 1) == ["shown to no one"]


def test_wrong_username_wrong_password_and_lockout(clients, server):
    alice = clients()
    alice.expect("Please enter username:")
    alice.type("colu")
    alice.expect("Wrong username.")
    alice.expect("Please enter username:")
    alice.type("  columbia  ")
    for _ in range(2):
        alice.expect("Please enter password:")
        alice.type("11")
        alice.expect("Wrong password")
    alice.expect("Please enter password:")
    alice.type("11")
    alice.expect("You have entered wrong password three times. You will be blocked for 30 seconds.")
    other = clients()                       # another client, same name: still blocked
    other.expect("Please enter username:")
    other.type("columbia")
    other.expect("Please enter password:")
    other.type("116bway")
    other.expect("You are still blocked, please try again later")
    server.wait_log("columbia.*lock")


def test_offline_message_is_delivered_at_next_login(clients):
    alice = clients()
    login(alice, "columbia")
    alice.type("message seas first")
    alice.expect("will be delivered")
    alice.type("message seas second")
    alice.expect("will be delivered")
    bob = clients()
    login(bob, "seas")
    # with when it was sent: by the server's clock, in the reader's local time
    first = bob.expect("): first")
    assert re.search(r"columbia \(while you were away, sent [A-Z][a-z]{2} \d{1,2} "
                     r"\d\d:\d\d\): first$", first), first
    bob.expect("columbia (while you were away, sent ")
    bob.expect("): second")


def test_broadcast_and_block(clients):
    alice, bob, carol = clients(), clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    login(carol, "google")
    carol.type("block columbia")
    carol.expect("User columbia has been blocked.")
    alice.type("broadcast hi all")
    bob.expect("columbia (to everyone): hi all")
    alice.expect("1 user who blocks you did not get it.")
    alice.type("message google psst")
    alice.expect("Your message could not be delivered as the recipient has blocked you.")
    carol.type("unblock columbia")
    carol.expect("User columbia has been unblocked.")
    alice.type("message google now?")
    carol.expect("columbia: now?")
    assert "hi all" not in carol.output


def test_duplicate_login_logs_out_the_older_client(clients):
    first, second = clients(), clients()
    login(first, "columbia")
    login(second, "columbia")
    first.expect("logged in elsewhere")
    first.expect("Please enter username:")
    second.type("online")
    second.expect("No other users are online.")


def test_logout_asks_for_a_username_again(clients):
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    alice.type("logout")
    bob.expect("columbia has logged out.")
    login(alice, "columbia")            # the client asks for a username again
    bob.expect("columbia has logged in.")


@pytest.mark.parametrize("key", [b"\x03", b"\x1c"], ids=["ctrl-c", "ctrl-backslash"])
def test_ctrl_c_logs_out_at_once_and_exits_0(clients, key):
    """(Ctrl-\\, SIGQUIT, ended a trial's client without a logout: the others saw it leave
    at the time-out)"""
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    alice.press(key)
    assert alice.wait_exit() == 0
    bob.expect("columbia has logged out.", timeout_s=5)


def test_closing_the_terminal_logs_out_at_once(clients, server):
    """The window closed (its terminal hung up: SIGHUP, and the screen gone) logs out as
    Ctrl-C does; a trial's client died there, and the others saw it leave 31 s later."""
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    os.close(alice.fd)                  # the terminal's other end goes: a hang-up
    alice.fd = os.open(os.devnull, os.O_RDWR)   # (for the fixture's own close)
    server.wait_log("columbia logged out", timeout_s=5)
    bob.expect("columbia has logged out.", timeout_s=5)
    assert "timed out" not in server.log()


def test_a_stopped_client_whose_terminal_closes_logs_out_at_once(clients, server):
    """A terminal closed with its client stopped (Ctrl-Z) sends it SIGHUP, SIGTERM and
    SIGCONT: the SIGTERM, taken as a second Ctrl-C, cut the logout short, and the others saw
    the user leave 31 s later (a trial's)."""
    alice, bob = clients(), clients()
    login(alice, "columbia")
    login(bob, "seas")
    os.kill(alice.pid, signal.SIGSTOP)
    os.kill(alice.pid, signal.SIGTERM)
    os.close(alice.fd)                  # the terminal's other end goes: SIGHUP and SIGCONT
    alice.fd = os.open(os.devnull, os.O_RDWR)   # (for the fixture's own close)
    os.kill(alice.pid, signal.SIGCONT)
    server.wait_log("columbia logged out", timeout_s=5)
    bob.expect("columbia has logged out.", timeout_s=5)
    assert "timed out" not in server.log()


def test_ctrl_c_at_a_prompt_simply_exits(clients):
    alice = clients()
    alice.expect("Please enter username:")
    alice.press(b"\x03")
    assert alice.wait_exit() == 0


def test_client_reads_its_input_from_a_file(clients, server, tmp_path):
    bob = clients()
    login(bob, "seas")
    script = "columbia\n116bway\nmessage seas from a file\nonline\n"
    status, out, err = run_file_client(server.port, script, tmp_path)
    assert status == 0, err
    assert "You have successfully logged in." in out
    assert "seas" in out.split("You have successfully logged in.")[1]   # the online list
    bob.expect("columbia: from a file")
    bob.expect("columbia has logged out.")         # end of input logs out at once


def test_bad_port_prints_usage_and_exits_2(tmp_path):
    for program, argv in (("server.py", ["notaport"]), ("client.py", ["127.0.0.1", "99999"])):
        done = subprocess.run([sys.executable, program, *argv], cwd=ROOT, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=10)
        assert done.returncode == 2
        assert b"usage" in done.stderr.lower()


@pytest.mark.parametrize("stay", [False, True], ids=["short", "staying"])
def test_a_scripted_login_shows_what_waited_for_it_once(server, tmp_path, stay):
    # a script that only logs in reads its offline messages before its end of input logs it
    # out, and a second run is not shown them again
    sent = "columbia\n116bway\nmessage seas one\nmessage seas two\nmessage seas three\n"
    status, out, err = run_file_client(server.port, sent, tmp_path)
    # (a run of messages to one offline user is told so once)
    assert status == 0 and out.count("will be delivered when they log in") == 1, err
    options = ["--stay-connected"] if stay else []
    status, first, err = run_file_client(server.port, "seas\nsummerisover\n", tmp_path,
                                         options=options)
    assert status == 0, err
    shown = first.split("You have successfully logged in.")[1]
    kept = [line.split("): ", 1)[1] for line in shown.splitlines()
            if line.startswith("columbia (while you were away, sent ")]
    assert kept == ["one", "two", "three"]
    status, second, err = run_file_client(server.port, "seas\nsummerisover\n", tmp_path,
                                          options=options)
    assert status == 0 and "You have successfully logged in." in second, err
    assert not any(line.startswith("columbia") for line in second.splitlines())


def test_acknowledgements_read_after_a_logout_count_however_many_reads_they_take(server):
    """(a re-check's raw listener: its acknowledgement of the 10th, read after its logout,
    counted, but the server said bye at once, and the 30th's, a read later, was dropped: 20
    came again at the next login, as in a window closed while its backlog was drawn)"""
    import json
    import socket

    import protocol
    from line_tags import LineTags
    from realprocs import welcome_of
    token = token_of(server.port, "columbia", ACCOUNTS["columbia"])
    exchange(server.port, [{"type": "message", "token": token, "to": "google",
                            "text": f"m{n}"} for n in range(30)])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT_S)
        welcome = welcome_of(server.port, "google", ACCOUNTS["google"],
                             listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn, conn.makefile("rwb") as stream:
            conn.settimeout(WAIT_S)

            def send(frame, tags=None):
                line = json.dumps(frame).encode() + b"\n"
                stream.write(line if tags is None else tags.tag(line))
                stream.flush()

            def read(tags):
                line = stream.readline()
                return json.loads(line if tags is None else tags.untag(line.rstrip(b"\n")))
            send({"type": "challenge", "nonce": "late"})
            hello = read(None)
            send({"type": "ok", "mac": protocol.mac(welcome["proof"],
                                                    protocol.DELIVERY_CLIENT_LABEL, "late",
                                                    hello["nonce"])})
            tags = LineTags(welcome["proof"], "late", hello["nonce"], dialer=False)
            seqs = [read(tags)["seq"] for _ in range(30)]       # shown, none acknowledged
            assert exchange(server.port, [{"type": "logout", "token": welcome["token"]}]) == [
                {"type": "ok"}]
            send({"type": "ack", "seq": seqs[9]}, tags)
            # no bye comes while more is unacknowledged (a bounded look for what must not come)
            assert select.select([conn], [], [], 0.5)[0] == []
            send({"type": "ack", "seq": seqs[-1]}, tags)
            assert read(tags)["type"] == "bye"
    assert welcome_of(server.port, "google", ACCOUNTS["google"])["waiting"] == 0
