"""What an idle user on the IRC port costs the server, counted as tests/test_idle_memory.py
counts a native staying user: tracemalloc bytes while the real glue, IRC front and reactor
register IRC clients (PASS, NICK, USER) on 127.0.0.1. Bytes, not time: a change that gives the
memory back fails here."""
from chat_server import ChatServer, Settings
from irc_glue import IrcFront
from passwords import load_credentials
from reactor import Reactor
from memory_helpers import bytes_per_user
from replay import counting_secrets
from server_glue import ServerGlue
from storage import Store
from timers import VirtualClock

USERS = 320             # the first 20 log in before the count begins (memory_helpers)
# tracemalloc bytes per idle IRC user, with its connection, link and the core's session: 2,710
# to 2,740 now for 300 users after 20 (memory_helpers) (2,810 while the core's session kept a
# delivery key it never used and a Connection had 19 slots; 5,700 while the session's 35 attributes were a dict, past the 30
# keys a dict shares, and its two queues were deques)
BYTES_PER_USER_MAX = 2800


def test_an_idle_irc_user_costs_a_bounded_number_of_bytes(tmp_path):
    credentials = tmp_path / "credential.txt"
    credentials.write_text("".join(f"u{n} p{n}\n" for n in range(USERS)))
    accounts = load_credentials(credentials)
    reactor = Reactor(VirtualClock())
    store = Store(":memory:")
    settings = Settings(user_rate_per_s=0, address_rate_per_s=0)
    core = ChatServer(accounts, store, settings, make_secret=counting_secrets())
    glue = ServerGlue(reactor, core, store, lambda text: None)
    listener = reactor.listen("127.0.0.1", 0,
                              IrcFront(glue, accounts, "chat.server", "#chat", settings))
    # the room asked for with the login, as WeeChat's autojoin does: no join timer waits
    logins = [f"PASS p{n}\r\nNICK u{n}\r\nUSER u{n} 0 * :u{n}\r\nJOIN #chat\r\n".encode()
              for n in range(USERS)]
    try:
        per_user = bytes_per_user(glue, listener.port, logins)
        print(f"{per_user:.0f} bytes per idle IRC user")
        assert per_user <= BYTES_PER_USER_MAX
    finally:
        reactor.close_all()
        listener.close()
