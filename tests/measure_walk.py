"""Follow one direct message from the keyboard to the other screen: python3 tests/measure_walk.py

Runs a server and two terminal clients in this one process, on one reactor over 127.0.0.1, logs
both in, then traces every call of the project's code from alice's typed line to the moment the
line `columbia: hi` is on seas's screen. Prints the functions and modules the walk crosses and
its moves between files: in all, for the server's part (its handling of the request and the
delivery it causes), and inside the server core's one `handle` of the message request. The
README's module map quotes these figures.
"""
import collections
import io
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chat_client import ChatClient, Settings as ClientSettings     # noqa: E402
from chat_server import ChatServer                                 # noqa: E402
from client_glue import ClientGlue                                 # noqa: E402
from reactor import Reactor                             # noqa: E402
from timers import RealClock                             # noqa: E402
from server_glue import ServerGlue                                 # noqa: E402
from passwords import load_credentials                               # noqa: E402
from storage import Store                                          # noqa: E402
from terminal import Terminal, TerminalScreen                      # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_FILES = {"chat_server.py", "server_glue.py", "server_events.py", "sessions.py",
                "delivery.py", "storage.py", "senders.py", "limits.py", "lockouts.py",
                "presence.py", "consents.py"}


def client(reactor, port, name):
    out = io.BytesIO()
    screen = TerminalScreen(Terminal(0, out, io.BytesIO(), interactive=False), 0)
    screen._glue = glue = ClientGlue(reactor, screen, ("127.0.0.1", port))
    listener = reactor.listen("127.0.0.1", 0, glue.listening)
    glue.core = ChatClient(ClientSettings(listener.port, client_id=name))
    glue.start()
    return screen, out


def until(reactor, done):
    for _ in range(10000):
        if done():
            return
        reactor.run_once(timeout_s=0.01)
    raise AssertionError("it never happened")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        reactor = Reactor(RealClock())
        store = Store(os.path.join(tmp, "chat.sqlite3"), reactor.clock)
        core = ChatServer(load_credentials(os.path.join(ROOT, "credential.txt")), store)
        glue = ServerGlue(reactor, core, store, lambda text: None)
        port = glue.listen("127.0.0.1", 0).port
        alice, alice_out = client(reactor, port, "a")
        seas, seas_out = client(reactor, port, "s")
        for screen, name, password in ((alice, "columbia", "116bway"),
                                       (seas, "seas", "summerisover")):
            screen._on_input(f"{name}\n{password}\n".encode())
            until(reactor, lambda: screen._glue.core.token is not None)
        # quiet before the walk: the presence notice delivered, every connection closed
        until(reactor, lambda: b"seas has logged in." in alice_out.getvalue()
              and not reactor.connections())
        calls, handled = [], []
        inside = []         # the depth of the server core's handle of the message, while in it

        def profile(frame, event, arg):
            code = frame.f_code
            if not code.co_filename.startswith(ROOT) or "/tests/" in code.co_filename:
                return
            where = (os.path.basename(code.co_filename), code.co_name)
            if event == "call":
                calls.append(where)
                if inside:
                    inside[0] += 1
                    handled.append(where)
                elif where == ("chat_server.py", "handle") and \
                        type(frame.f_locals.get("event")).__name__ == "Request" and \
                        frame.f_locals["event"].frame.get("type") == "message":
                    inside.append(0)
                    handled.append(where)
            elif event == "return" and inside:
                if inside[0] == 0:
                    inside.clear()
                else:
                    inside[0] -= 1
        sys.setprofile(profile)
        alice._on_input(b"message seas hi\n")
        until(reactor, lambda: b"columbia: hi" in seas_out.getvalue())
        sys.setprofile(None)
    report("the whole walk", calls)
    report("the server's part", [call for call in calls if call[0] in SERVER_FILES])
    report("one server handle of the message", handled)


def report(title, calls):
    functions = sorted(set(calls))
    modules = collections.Counter(module for module, _ in functions)
    moves = sum(1 for a, b in zip(calls, calls[1:]) if a[0] != b[0])
    print(f"{title}: {len(functions)} functions in {len(modules)} modules, {len(calls)} calls, "
          f"{moves} moves between files")
    print("   " + ", ".join(f"{module} {count}" for module, count in modules.most_common()))


if __name__ == "__main__":
    main()
