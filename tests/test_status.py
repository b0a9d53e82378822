"""The log's status line: every period, when anything changed, who is online, what was taken
and what waits (an operator's trial could not tell a busy server from a stuck one)."""
from chat_server import ChatServer, Settings
from reactor import Reactor
from replay import counting_secrets
from server_events import Reply, Request
from status import StatusLine
from storage import Store
from timers import VirtualClock

ACCOUNTS = {"alice": "pa", "bob": "pb", "carol": "pc"}


def test_a_status_line_says_what_changed_in_each_period_and_nothing_when_nothing_did():
    clock = VirtualClock()
    reactor = Reactor(clock)
    store = Store(":memory:", clock)
    core = ChatServer(ACCOUNTS, store, Settings(), make_secret=counting_secrets())
    said = []
    StatusLine(reactor, core, store, said.append, 1000, 256 * 1024 * 1024, every_s=60.0)
    reply = core.handle(Request(1, {"type": "login", "user": "alice", "password": "pa",
                                    "port": 5000}, "127.0.0.1"), 0.0)
    [token] = [action.frame["token"] for action in reply if isinstance(action, Reply)]
    for n in range(3):
        core.handle(Request(1, {"type": "message", "token": token, "to": "bob",
                                "text": f"hi {n}"}, "127.0.0.1"), 1.0)
    core.handle(Request(1, {"type": "message", "token": token, "to": "carol", "text": "yo"},
                        "127.0.0.1"), 1.0)
    store.commit()
    clock.advance(60.0)
    assert said == ["status: 1 user online; 4 messages taken in the last 1 minute; 4 messages "
                    "wait for 2 users (of 1,000 allowed; 0.0 MiB stored of the 256.0 MiB quota)"]
    clock.advance(60.0)
    assert len(said) == 1                               # nothing changed: nothing said
    core.handle(Request(1, {"type": "logout", "token": token}, "127.0.0.1"), 121.0)
    clock.advance(60.0)
    assert said[1] == ("status: 0 users online; 0 messages taken in the last 1 minute; "
                       "4 messages wait for 2 users (of 1,000 allowed; 0.0 MiB stored of the "
                       "256.0 MiB quota)")
