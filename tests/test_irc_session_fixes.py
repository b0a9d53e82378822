"""IrcSession fixes found by running real IRC clients (irssi, WeeChat) against the server:
each test is one exchange a client really had (tests/test_irc_clients.py runs the clients)."""
from irc_session import IrcSession, folded
from irc_wire import parse

ACCOUNTS = folded(("columbia", "seas"))


def said(session, raw):
    """One line from the client -> the lines the session wrote back, as text."""
    session.from_client(parse(raw.encode()), 1000.0)
    lines = [line.decode() for line in session.lines]
    session.lines.clear()
    return lines


def welcomed(name="columbia"):
    """A session past registration (PASS, NICK, USER, the core's welcome), in the room."""
    session = IrcSession(ACCOUNTS, "chat.server", "#chat", "127.0.0.1")
    for raw in ("PASS pw", f"NICK {name}", "USER u 0 * :u"):
        said(session, raw)
    login = session.requests.pop()
    session.from_core({"id": login["id"], "type": "welcome", "user": name, "token": "t"}, 1000.0)
    said(session, "JOIN #chat")
    online = session.requests.pop()
    session.from_core({"id": online["id"], "type": "online", "users": []}, 1000.0)
    assert session.joined and not session.requests
    session.lines.clear()
    return session


def test_irssi_usermode_plus_i_is_taken_quietly():
    # irssi sends `MODE columbia +i` after the welcome (its usermode setting); the answer was
    # `501 columbia :Unknown MODE flag`, printed in its status window at every connection
    session = welcomed()
    assert said(session, "MODE columbia +i") == []
    assert said(session, "MODE columbia") == [":chat.server 221 columbia +i\r\n"]
    assert said(session, "MODE columbia +w") == [":chat.server 501 columbia :Unknown MODE flag\r\n"]
    assert said(session, "MODE columbia -i") == []      # known, not taken: no 501 (a trial's)


def test_ctcp_is_not_passed_on_so_two_irc_clients_cannot_answer_each_other_for_ever():
    # WeeChat (google) sent `PRIVMSG columbia :\x01VERSION\x01`; irssi (columbia) answered
    # `NOTICE google :\x01VERSION irssi v1.4.3\x01`, which reached WeeChat as
    # `PRIVMSG google :\x01VERSION irssi v1.4.3\x01`, a new query: it answered, and so on every
    # 4 s, each line stored (and resumed at the next login); client.py users read \x01VERSION\x01
    session = welcomed()
    assert said(session, "PRIVMSG seas :\x01VERSION\x01") == [
        ":chat!chat@services NOTICE columbia :CTCP VERSION is not passed on here: only text and "
        "/me reach other users.\r\n"]
    assert said(session, "NOTICE seas :\x01VERSION irssi v1.4.3\x01") == []     # a reply: quiet
    # an ACTION in a NOTICE is a reply too: passed on, it reached WeeChat as "CTCP reply"
    assert said(session, "NOTICE #chat :\x01ACTION nods\x01") == []
    assert said(session, "PRIVMSG #chat :\x01PING 1234\x01") != []
    assert session.requests == []                       # nothing went to the core
    said(session, "PRIVMSG seas :\x01ACTION waves\x01")   # /me goes on, as client.py's words
    said(session, "PRIVMSG seas :hi \x01 there")
    assert [(r["type"], r["text"]) for r in session.requests] == [
        ("message", "/me waves"), ("message", "hi \x01 there")]
