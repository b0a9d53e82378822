"""Helpers for the server core's unit tests: a core on an in-memory store, a login, and the
parts of its actions a test reads."""
from replay import counting_secrets
from chat_server import ChatServer, Settings
from server_events import Deliver, Log, Reply, Request
from storage import Store

ACCOUNTS = {"alice": "PW-SECRET-a", "bob": "PW-SECRET-b", "carol": "pässwörd-☃"}


def make_server(settings=Settings(), **accounts):
    """A ChatServer with `accounts` (ACCOUNTS by default) on an in-memory store -> (core, store)."""
    store = Store(":memory:", new_identity="store1")
    server = ChatServer(accounts or dict(ACCOUNTS), store, settings,
                        make_secret=counting_secrets())
    return server, store


def login(server, user, now=0.0, port=5000, conn=1, host="127.0.0.1", password=None):
    """`user` logs in on connection `conn` -> the actions."""
    frame = {"type": "login", "user": user, "port": port,
             "password": ACCOUNTS[user] if password is None else password}
    return server.handle(Request(conn, frame, host), now)


def replies(actions):
    return [action.frame for action in actions if isinstance(action, Reply)]


def deliveries(actions):
    return [(action.address, action.frame) for action in actions if isinstance(action, Deliver)]


def delivered_frames(actions):
    return [action.frame for action in actions if isinstance(action, Deliver)]


def logs(actions):
    return [action.text for action in actions if isinstance(action, Log)]


class RecordingCore:
    """A stand-in core: records what it is given and returns canned actions."""

    def __init__(self, actions_for):
        self.seen = []
        self.actions_for = actions_for

    def handle(self, event, now):
        self.seen.append((event, now))
        return self.actions_for(event, now)
