"""IrcSession on its own, without a core: each test feeds IRC lines (parsed as irc_glue parses
them) and core frames, and pins down what the session writes back, what it asks of the core and
whether it hangs up. One behaviour a test; the exact line wherever its wording or numeric is the
behaviour (Modern IRC, modern.ircdocs.horse, for the numerics and their parameters).

The tests of the eleven bugs these found (each first marked xfail, strict) now pass."""
import base64

import pytest

from irc_session import (ACK_PING_BATCH, ACK_PING_BUSY_S, ACK_PING_GAP_S, ACK_PINGS, ACK_TOKEN,
                         MAX_EARLY_LINES, REPLAYED_S, IrcSession, Shared, folded)
from irc_wire import parse
from irc_words import HELP, NO_PRIVATE, TOPIC

SERVER = "chat.server"
ACCOUNTS = folded(("columbia", "seas", "guest"))
WALL = 1764950400.25                    # 2025-12-05T16:00:00.250Z
STAMP = "2025-12-05T16:00:00.250Z"
S = f":{SERVER} "                       # the source of our numerics
ME = ":columbia!~u@chat "          # the source of the user's own lines
SEAS = ":seas!seas@chat "


# -- helpers ------------------------------------------------------------------------------------

def new_session(**kwargs):
    return IrcSession(kwargs.pop("accounts", ACCOUNTS), SERVER, "#chat", "127.0.0.1", **kwargs)


def written(session):
    """The lines the session wrote since the last look, as text without their CR LF."""
    assert all(raw.endswith(b"\r\n") for raw in session.lines), session.lines
    lines = [raw.decode()[:-2] for raw in session.lines]
    session.lines.clear()
    return lines


def said(session, *raws):
    """Lines from the client -> the lines the session wrote back."""
    for raw in raws:
        session.from_client(parse(raw.encode()), WALL)
    return written(session)


def asked(session):
    """The requests for the core since the last look, taken."""
    requests, session.requests[:] = list(session.requests), []
    return requests


def request(session):
    """The one request the session has for the core, taken."""
    requests = asked(session)
    assert len(requests) == 1, requests
    return requests[0]


def reply_to(session, req, kind, **fields):
    """The core's reply to `req` -> the lines the session wrote."""
    session.from_core({"id": req["id"], "type": kind, **fields}, WALL)
    return written(session)


def answer(session, kind, **fields):
    """The core answers the session's one request -> the lines the session wrote."""
    return reply_to(session, request(session), kind, **fields)


def delivered(session, kind, **fields):
    """A delivery from the core (no id) -> the lines the session wrote."""
    session.from_core({"type": kind, **fields}, WALL)
    return written(session)


def registered(session, name="columbia"):
    """PASS, NICK and USER sent: the login is on its way to the core."""
    assert said(session, "PASS pw", f"NICK {name}", "USER u 0 * :u") == []


def welcomed(name="columbia", caps=(), online=(), **kwargs):
    """A session past registration, the room joined (its lines and requests taken)."""
    session = new_session(**kwargs)
    if caps:
        said(session, "CAP LS 302", "CAP REQ :" + " ".join(caps))
    registered(session, name)
    if caps:
        said(session, "CAP END")
    answer(session, "welcome", user=name, token="t")
    session.join_now()                              # (the glue's JOIN_WAIT_S)
    answer(session, "online", users=list(online))
    assert session.joined and not session.requests and not session.lines
    return session


def sasl_blob(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def sasl_ready(nick="columbia"):
    """A session negotiating with the sasl cap, NICK and USER given, `AUTHENTICATE PLAIN` sent."""
    session = new_session()
    said(session, "CAP LS 302", "CAP REQ :sasl", f"NICK {nick}", "USER u 0 * :u")
    assert said(session, "AUTHENTICATE PLAIN") == ["AUTHENTICATE +"]
    return session


def service(text, to="columbia"):
    return f":chat!chat@services NOTICE {to} :{text}"


# -- CAP ----------------------------------------------------------------------------------------

def test_cap_ls_without_302_offers_the_names_without_values():
    assert said(new_session(), "CAP LS") == [
        f"{S}CAP * LS :sasl server-time message-tags echo-message multi-prefix userhost-in-names"]


def test_cap_ls_302_offers_the_sasl_mechanism_as_a_value():
    assert said(new_session(), "CAP LS 302") == [
        f"{S}CAP * LS :sasl=PLAIN server-time message-tags echo-message multi-prefix userhost-in-names"]


def test_cap_list_names_the_enabled_caps_sorted():
    session = new_session()
    assert said(session, "CAP REQ :server-time echo-message") == [
        f"{S}CAP * ACK :server-time echo-message"]
    assert said(session, "CAP LIST") == [f"{S}CAP * LIST :echo-message server-time"]


def test_cap_list_with_nothing_enabled_is_empty():
    assert said(new_session(), "CAP LIST") == [f"{S}CAP * LIST :"]


def test_cap_req_of_an_unknown_cap_is_refused_whole_and_enables_nothing():
    session = new_session()
    assert said(session, "CAP REQ :server-time bogus") == [f"{S}CAP * NAK :server-time bogus"]
    assert session.caps == set()


def test_cap_req_with_no_caps_is_refused():
    assert said(new_session(), "CAP REQ") == [f"{S}CAP * NAK :"]


def test_cap_req_of_minus_a_name_disables_it():
    session = new_session()
    said(session, "CAP REQ :server-time echo-message")
    assert said(session, "CAP REQ -server-time") == [f"{S}CAP * ACK -server-time"]
    assert session.caps == {"echo-message"}


def test_an_invalid_cap_subcommand_gets_410():
    assert said(new_session(), "CAP FROB x") == [f"{S}410 * FROB :Invalid CAP command"]


def test_cap_with_no_subcommand_gets_461():
    assert said(new_session(), "CAP") == [f"{S}461 * CAP :Not enough parameters"]


def test_cap_ls_before_welcome_holds_the_login_until_cap_end():
    session = new_session()
    said(session, "CAP LS 302")
    registered(session)
    assert session.requests == []
    assert said(session, "CAP END") == []
    assert request(session) == {"user": "columbia", "password": "pw", "stay": True, "id": "i1",
                                "type": "login"}


def test_cap_end_with_no_negotiation_begun_does_nothing():
    session = new_session()
    assert said(session, "CAP END") == []
    registered(session)
    assert request(session)["type"] == "login"


def test_cap_after_welcome_answers_with_the_nick_and_holds_nothing():
    session = welcomed()
    assert said(session, "CAP LS") == [
        f"{S}CAP columbia LS :sasl server-time message-tags echo-message multi-prefix userhost-in-names"]
    assert said(session, "CAP REQ :server-time") == [f"{S}CAP columbia ACK server-time"]
    assert said(session, "CAP END") == []
    assert not session.negotiating and session.caps == {"server-time"}
    assert said(session, "PRIVMSG columbia :still here") == [
        f"@time={STAMP} {ME}PRIVMSG columbia :still here"]


def test_cap_ls_with_a_superscript_version_is_taken_as_no_version():
    assert said(new_session(), "CAP LS ³") == [
        f"{S}CAP * LS :sasl server-time message-tags echo-message multi-prefix userhost-in-names"]


# -- AUTHENTICATE (SASL PLAIN) ------------------------------------------------------------------

def test_authenticate_without_the_sasl_cap_fails():
    session = new_session()
    assert said(session, "AUTHENTICATE PLAIN") == [
        f"{S}904 * :SASL authentication is not possible now"]
    assert session.sasl is None


def test_authenticate_with_no_parameter_gets_461():
    assert said(new_session(), "AUTHENTICATE") == [
        f"{S}461 * AUTHENTICATE :Not enough parameters"]


def test_a_mechanism_other_than_plain_gets_908_then_904():
    session = new_session()
    said(session, "CAP REQ sasl")
    assert said(session, "AUTHENTICATE EXTERNAL") == [
        f"{S}908 * PLAIN :are available SASL mechanisms", f"{S}904 * :SASL authentication failed"]
    assert session.sasl is None


def test_authenticate_star_aborts_and_a_new_exchange_may_begin():
    session = sasl_ready()
    assert said(session, "AUTHENTICATE *") == [f"{S}906 columbia :SASL authentication aborted"]
    assert said(session, "AUTHENTICATE PLAIN") == ["AUTHENTICATE +"]     # a mechanism again
    assert session.requests == []


def test_the_plain_blob_logs_in_as_its_user_with_its_password():
    session = sasl_ready()
    assert said(session, "AUTHENTICATE " + sasl_blob("Seas", "pw", authzid="Seas")) == []
    assert request(session) == {"user": "seas", "password": "pw", "stay": True, "id": "i1",
                                "type": "login"}


def test_a_plain_blob_that_would_act_as_another_user_fails():
    """RFC 4616: an authorization id other than the login's, which nobody may take here, is
    a failed login (a trial's authzid 'other' with google's name and password got in)."""
    session = sasl_ready()
    assert said(session, "AUTHENTICATE " + sasl_blob("seas", "pw", authzid="columbia")) == [
        f"{S}904 columbia :SASL authentication failed: you may log in as yourself only"]
    assert session.requests == []
    assert said(session, "AUTHENTICATE PLAIN") == ["AUTHENTICATE +"]     # a new try may begin


def test_a_blob_over_400_bytes_comes_in_chunks_and_is_read_once_a_short_one_ends_it():
    session = sasl_ready()
    password = "p" * 350                # a 476-character blob: 400 + 76
    blob = sasl_blob("seas", password)
    assert said(session, "AUTHENTICATE " + blob[:400]) == []
    assert session.requests == []       # a full chunk: more may follow
    assert said(session, "AUTHENTICATE " + blob[400:]) == []
    assert request(session)["password"] == password


def test_a_blob_of_exactly_400_bytes_ends_with_a_plus():
    session = sasl_ready()
    password = "p" * 294                # a blob of exactly 400 characters
    blob = sasl_blob("seas", password)
    assert len(blob) == 400
    said(session, "AUTHENTICATE " + blob)
    assert session.requests == []
    said(session, "AUTHENTICATE +")
    assert request(session)["password"] == password


def test_a_blob_over_1200_bytes_fails_and_the_rest_of_it_is_not_read():
    session = sasl_ready()
    for _ in range(3):
        assert said(session, "AUTHENTICATE " + "A" * 400) == []
    assert said(session, "AUTHENTICATE " + "A" * 400) == [
        f"{S}904 columbia :SASL authentication failed: the message is too long"]
    assert said(session, "AUTHENTICATE " + "A" * 400) == []     # more of it: ignored
    assert said(session, "AUTHENTICATE +") == []                  # its end
    assert session.requests == [] and session.sasl is None
    assert said(session, "AUTHENTICATE PLAIN") == ["AUTHENTICATE +"]     # a new try


def test_one_line_over_400_bytes_gets_905():
    session = sasl_ready()
    assert said(session, "AUTHENTICATE " + "A" * 401) == [
        f"{S}905 columbia :SASL message too long"]
    assert session.sasl is None


@pytest.mark.parametrize("blob", ["!!!notbase64", base64.b64encode(b"no separators").decode(),
                                  base64.b64encode(b"a\0b\0c\0d").decode(),
                                  base64.b64encode(b"\0seas\0\xff").decode(), "+"])
def test_a_malformed_blob_gets_904_and_nothing_is_asked(blob):
    session = sasl_ready()
    assert said(session, "AUTHENTICATE " + blob) == [
        f"{S}904 columbia :SASL authentication failed: not a PLAIN message"]
    assert session.requests == [] and session.hangup is None


def test_a_sasl_login_says_900_and_903_and_the_welcome_waits_for_cap_end():
    session = sasl_ready()
    said(session, "AUTHENTICATE " + sasl_blob("columbia", "pw"))
    assert answer(session, "welcome", user="columbia", token="t") == [
        f"{S}900 columbia columbia!~u@chat columbia :You are now logged in as columbia",
        f"{S}903 columbia :SASL authentication successful"]
    assert not session.welcomed
    lines = said(session, "CAP END")
    assert lines[0] == f"{S}001 columbia :Welcome to the chat room, columbia!~u@chat"
    assert session.welcomed and not session.joined and session.requests == []


def test_authenticate_after_registration_gets_462():
    session = welcomed(caps=("sasl",))
    assert said(session, "AUTHENTICATE PLAIN") == [
        f"{S}462 columbia :You may not reregister: the login is the account"]


def test_authenticate_after_a_sasl_login_before_cap_end_gets_907():
    session = sasl_ready()
    said(session, "AUTHENTICATE " + sasl_blob("columbia", "pw"))
    answer(session, "welcome", user="columbia", token="t")
    assert said(session, "AUTHENTICATE PLAIN") == [
        f"{S}907 columbia :SASL authentication is not possible now"]


# -- PASS, NICK, USER ---------------------------------------------------------------------------

def test_pass_after_welcome_gets_462():
    session = welcomed()
    assert said(session, "PASS other") == [f"{S}462 columbia :You may not reregister"]


def test_pass_after_a_sasl_login_gets_462():
    session = sasl_ready()
    said(session, "AUTHENTICATE " + sasl_blob("columbia", "pw"))
    answer(session, "welcome", user="columbia", token="t")
    assert said(session, "PASS pw") == [f"{S}462 columbia :You may not reregister"]


def test_pass_with_no_password_gets_461():
    assert said(new_session(), "PASS") == [f"{S}461 * PASS :Not enough parameters"]


@pytest.mark.parametrize("raw", ["NICK", "NICK :"])
def test_nick_with_no_nick_gets_431(raw):
    session = new_session()
    assert said(session, raw) == [f"{S}431 * :No nickname given"]
    assert session.nick == "*"


@pytest.mark.parametrize("nick", ["1abc", "a.b", "#chan", "x" * 65])
def test_a_bad_nick_gets_432_and_is_not_taken(nick):
    session = new_session()
    assert said(session, f"NICK {nick}") == [f"{S}432 * {nick} :Erroneous nickname"]
    assert session.nick == "*"


def test_a_nick_change_after_welcome_gets_432():
    session = welcomed()
    assert said(session, "NICK seas") == [
        f"{S}432 columbia seas :Nicks are account names here: yours stays columbia"]
    assert session.nick == "columbia"


def test_nick_after_welcome_to_the_same_nick_is_taken_quietly():
    assert said(welcomed(), "NICK columbia") == []


def test_user_with_too_few_parameters_gets_461():
    session = new_session()
    said(session, "PASS pw", "NICK columbia")
    assert said(session, "USER u 0 *") == [f"{S}461 columbia USER :Not enough parameters"]
    assert session.requests == []


def test_user_again_after_welcome_gets_462():
    assert said(welcomed(), "USER u 0 * :u") == [f"{S}462 columbia :You may not reregister"]


def test_a_nick_in_another_case_logs_in_as_its_account():
    session = new_session()
    registered(session, "Columbia")
    assert request(session)["user"] == "columbia"


def test_the_password_is_not_kept_once_the_login_is_asked():
    session = new_session()
    registered(session)
    assert request(session)["password"] == "pw"
    assert session.password is None


def test_no_password_gets_464_and_the_link_is_closed_without_asking_the_core():
    session = new_session()
    assert said(session, "NICK seas", "USER u 0 * :u") == [
        f"{S}464 seas :Password required: connect with your account's password (PASS, or SASL "
        f"PLAIN)", "ERROR :Closing link: no password"]
    assert session.hangup == "no password" and session.requests == []


def test_a_nick_no_account_has_is_told_so_without_a_password_too():
    """(told "Password required", a trial's user looked for a password that cannot exist)"""
    session = new_session()
    assert said(session, "NICK bob", "USER u 0 * :u") == [
        f"{S}464 bob :No account is called bob", "ERROR :Closing link: No account is called bob"]
    assert session.requests == []


def test_an_open_account_registers_without_pass():
    session = new_session(open_accounts={"guest"})
    assert said(session, "NICK Guest", "USER u 0 * :u") == []
    assert request(session) == {"user": "guest", "password": "(none)", "stay": True, "id": "i1",
                                "type": "login"}


def test_quit_before_login_closes_without_asking_the_core():
    session = new_session()
    assert said(session, "NICK columbia", "QUIT") == ["ERROR :Closing link: Quit"]
    assert session.hangup == "quit" and session.requests == []


# -- PING, PONG, the registration gate, unknown commands ----------------------------------------

def test_ping_with_no_token_gets_409():
    assert said(new_session(), "PING") == [f"{S}409 * :No origin specified"]


def test_pong_with_no_token_gets_409_and_one_with_a_token_not_ours_nothing():
    assert said(new_session(), "PONG") == [f"{S}409 * :No origin specified"]


def test_ping_is_answered_with_its_token():
    assert said(new_session(), "PING :abc def") == [f"{S}PONG {SERVER} :abc def"]


@pytest.mark.parametrize("raw", ["PONG :hello", "PONG :ack-", "PONG :ack-x",
                                 "PONG :ack-9"])
def test_a_pong_that_answers_no_ping_of_ours_is_ignored(raw):
    session = welcomed()
    delivered(session, "message", **{"from": "seas", "text": "hi", "seq": 5})
    session.ping_for_ack(0.0)
    written(session)
    assert said(session, raw) == []
    assert session.requests == [] and session.acked_seq == 0


def test_a_pong_with_a_superscript_digit_is_ignored():
    session = welcomed()
    assert said(session, "PONG :ack-²") == []


@pytest.mark.parametrize("raw", ["JOIN #chat", "PRIVMSG seas :hi", "WHOIS seas", "MODE #chat"])
def test_commands_before_registration_get_451(raw):
    session = new_session()
    assert said(session, raw) == [f"{S}451 * :You have not registered"]
    assert session.requests == []


@pytest.mark.parametrize("raw", ["001 columbia :hi", "433 * x :taken"])
def test_numerics_from_a_client_are_ignored(raw):
    assert said(new_session(), raw) == []
    assert said(welcomed(), raw) == []


def test_an_unknown_command_gets_421_before_and_after_welcome():
    assert said(new_session(), "FROB x") == [f"{S}421 * FROB :Unknown command"]
    assert said(welcomed(), "frob x") == [f"{S}421 columbia FROB :Unknown command"]


def test_nothing_is_read_once_the_session_is_gone():
    session = welcomed()
    said(session, "QUIT :bye")
    asked(session)
    assert said(session, "PRIVMSG seas :hi", "FROB") == []
    assert session.requests == []


# -- PRIVMSG and NOTICE: errors ------------------------------------------------------------------

def test_privmsg_with_no_recipient_gets_411():
    assert said(welcomed(), "PRIVMSG") == [f"{S}411 columbia :No recipient given (PRIVMSG)"]
    # targets that are all empty name no one either (a NOTICE is never answered)
    assert said(welcomed(), "PRIVMSG , :hi") == [f"{S}411 columbia :No recipient given (PRIVMSG)"]
    assert said(welcomed(), "NOTICE , :hi") == []


@pytest.mark.parametrize("raw", ["PRIVMSG seas", "PRIVMSG seas :"])
def test_privmsg_with_no_text_gets_412(raw):
    assert said(welcomed(), raw) == [f"{S}412 columbia :No text to send"]


def test_privmsg_to_more_than_four_targets_gets_407_and_sends_nothing():
    session = welcomed()
    assert said(session, "PRIVMSG a,b,c,d,e :hi") == [
        f"{S}407 columbia a,b,c,d,e :Too many recipients: at most 4"]
    assert session.requests == []


@pytest.mark.parametrize("raw", ["NOTICE", "NOTICE seas", "NOTICE seas :", "NOTICE a,b,c,d,e :x",
                                 "NOTICE #other :x", "NOTICE nobody :x", "NOTICE chat :help",
                                 "NOTICE seas :\x01VERSION\x01"])
def test_a_notice_is_never_answered_with_an_error(raw):
    session = welcomed()
    assert said(session, raw) == []
    assert session.requests == []


@pytest.mark.parametrize("channel", ["#other", "&local"])
def test_privmsg_to_another_channel_gets_404(channel):
    session = welcomed()
    assert said(session, f"PRIVMSG {channel} :hi") == [
        f"{S}404 columbia {channel} :Cannot send to channel: this server has one room, #chat"]
    assert session.requests == []


def test_privmsg_to_an_unknown_nick_gets_401_without_asking_the_core():
    session = welcomed()
    assert said(session, "PRIVMSG nobody :hi") == [f"{S}401 columbia nobody :No such nick"]
    assert session.requests == []


def test_privmsg_to_several_targets_asks_for_each():
    session = welcomed()
    said(session, "PRIVMSG Seas,#CHAT :hi all")
    assert [(r["type"], r.get("to"), r["text"], r["token"]) for r in asked(session)] == [
        ("message", "seas", "hi all", "t"), ("broadcast", None, "hi all", "t")]


# -- PRIVMSG to oneself --------------------------------------------------------------------------

def test_a_message_to_oneself_is_shown_back_and_stored_nowhere():
    session = welcomed()
    assert said(session, "PRIVMSG Columbia :note to self") == [
        f"{ME}PRIVMSG columbia :note to self"]
    assert session.requests == []


def test_a_message_to_oneself_carries_a_server_time_tag_when_the_cap_is_on():
    session = welcomed(caps=("server-time",))
    assert said(session, "PRIVMSG columbia :note to self") == [
        f"@time={STAMP} {ME}PRIVMSG columbia :note to self"]


def test_a_notice_to_oneself_is_shown_back_as_a_notice():
    assert said(welcomed(), "NOTICE columbia :note to self") == [
        f"{ME}NOTICE columbia :note to self"]


# -- the core's answers to a message or broadcast -----------------------------------------------

def test_a_message_taken_for_an_online_user_writes_nothing():
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "ok", stored=False) == []


def test_a_message_stored_for_an_absent_user_says_so():
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "ok", stored=True) == [
        service("seas is not online: your message waits for their next login.")]


@pytest.mark.parametrize("fields, counts", [
    ({"skipped": 2}, "2 block you"), ({"skipped": 1}, "1 blocks you"),
    ({"skipped": 0, "full": 1}, "1 has too much waiting"),
    ({"skipped": 1, "full": 3}, "1 blocks you and 3 have too much waiting")])
def test_a_broadcast_some_did_not_get_says_how_many(fields, counts):
    session = welcomed()
    said(session, "PRIVMSG #chat :hello all")
    assert answer(session, "ok", **fields) == [service(f"Not everyone got that: {counts}.")]


def test_who_did_not_get_a_room_message_is_said_again_only_when_it_changes():
    """(a trial's notice followed every line of a user someone blocked)"""
    session = welcomed()
    told = []
    for skipped, full in ((1, 0), (1, 0), (1, 0), (1, 1), (1, 1), (0, 0), (1, 0), (1, 0)):
        said(session, "PRIVMSG #chat :hello all")
        told += answer(session, "ok", skipped=skipped, full=full)
        said(session, "PRIVMSG seas :and you")    # (a private message's answer changes nothing)
        told += answer(session, "ok", stored=False)
    assert told == [service("Not everyone got that: 1 blocks you."),
                    service("Not everyone got that: 1 blocks you and 1 has too much waiting."),
                    service("Not everyone got that: 1 blocks you.")]


def test_a_broadcast_everyone_got_writes_nothing():
    session = welcomed()
    said(session, "PRIVMSG #chat :hello all")
    assert answer(session, "ok", skipped=0) == []


@pytest.mark.parametrize("code, why", [
    ("blocked", "Not sent to seas (seas blocks you)"),
    ("inbox_full", "Not sent to seas (too many messages already wait for seas: try later)"),
    ("store_full", "Not sent to seas (the server holds as many messages as it may: try later)"),
    # (a trial's, answered so as the store's file was replaced, was stored: sent again as the
    # words asked, it came twice)
    ("unavailable", "Perhaps not sent to seas (the server cannot store messages just now, and "
                    "may have this one: if it does not arrive, send it again in a moment)"),
    ("slow_down", "Not sent to seas (too many messages at once: send it again in a moment)")])
def test_a_refused_message_is_named_in_a_notice_with_why(code, why):
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "error", code=code, seconds=1) == [
        service(f"{why}: hello there")]


@pytest.mark.parametrize("code, why", [
    ("inbox_full", "you have left seas as many messages as one sender may until they read them"),
    ("store_full", "you have left users who are away as many messages as one sender may until "
                   "they read them")])
def test_a_message_past_the_senders_share_is_named_with_why(code, why):
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "error", code=code, share=True) == [
        service(f"Not sent to seas ({why}): hello there")]


def test_a_refusal_with_an_unknown_code_gives_the_core_s_message():
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "error", code="old_mid", message="send it again") == [
        service("Not sent to seas (send it again): hello there")]


def test_a_refusal_with_an_unknown_code_and_no_message_says_refused():
    session = welcomed()
    said(session, "PRIVMSG #chat :hello all")
    assert answer(session, "error", code="weird") == [
        service("Not sent to #chat (refused): hello all")]


def test_unknown_user_from_the_core_is_401():
    session = welcomed()
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "error", code="unknown_user") == [
        f"{S}401 columbia seas :No such nick"]


def test_unknown_user_from_the_core_to_a_notice_is_not_answered():
    session = welcomed()
    said(session, "NOTICE seas :hello there")
    assert answer(session, "error", code="unknown_user") == []


def test_a_long_refused_message_is_named_in_several_notices():
    session = welcomed()
    text = "word " * 90
    said(session, "PRIVMSG seas :" + text)
    lines = answer(session, "error", code="blocked")
    assert len(lines) == 2
    assert all(len(line.encode()) < 512 for line in lines)
    assert lines[0].startswith(service("Not sent to seas (seas blocks you): word"))


# -- echo-message --------------------------------------------------------------------------------

def test_echo_message_echoes_a_message_once_the_core_took_it():
    session = welcomed(caps=("echo-message",))
    said(session, "PRIVMSG Seas :hello there")
    assert session.lines == []              # not before the core's yes
    assert answer(session, "ok", stored=True) == [
        f"{ME}PRIVMSG seas :hello there",
        service("seas is not online: your message waits for their next login.")]


def test_echo_message_echoes_a_broadcast_to_the_room():
    session = welcomed(caps=("echo-message",))
    said(session, "PRIVMSG #chat :hello all")
    assert answer(session, "ok", skipped=0) == [f"{ME}PRIVMSG #chat :hello all"]


def test_echo_message_echoes_a_notice_as_a_notice():
    session = welcomed(caps=("echo-message",))
    said(session, "NOTICE seas :hello there")
    assert answer(session, "ok", stored=False) == [f"{ME}NOTICE seas :hello there"]


def test_echo_message_does_not_echo_a_refused_message():
    session = welcomed(caps=("echo-message",))
    said(session, "PRIVMSG seas :hello there")
    assert answer(session, "error", code="blocked") == [
        service("Not sent to seas (seas blocks you): hello there")]


def test_echo_message_splits_a_long_text_into_lines_that_fit():
    session = welcomed(caps=("echo-message",))
    text = " ".join(f"w{i:03}" for i in range(99))      # 494 bytes: its line from us is longer
    said(session, "PRIVMSG seas :" + text)
    lines = answer(session, "ok", stored=False)
    assert len(lines) == 2
    assert all(line.startswith(f"{ME}PRIVMSG seas :") for line in lines)
    assert " ".join(line.split(" :", 1)[1] for line in lines) == text
    # as full as a line may be (it was cut at 400 bytes, whatever the line's prefix)
    assert 500 <= len(lines[0].encode()) + 2 <= 512


def test_a_line_that_fits_after_its_prefix_is_echoed_whole():
    """(a trial's irssi user's 475-byte lines came out in two, cut at a fixed 400 bytes)"""
    session = welcomed(caps=("echo-message",))
    text = "x" * (512 - len(f"{ME}PRIVMSG seas :") - 4) + " y"
    said(session, "PRIVMSG seas :" + text)
    assert answer(session, "ok", stored=False) == [f"{ME}PRIVMSG seas :{text}"]


@pytest.mark.parametrize("text", ["\x01action lower\x01", "\x01Action lower",
                                  "\x01ACTION lower", "\x01ACTION\tlower\x01"])
def test_an_action_in_any_case_with_its_closing_mark_or_not_is_an_action(text):
    """(a trial's "\x01action lower\x01" reached client.py users with its marks, and IRC
    users as " action lower ")"""
    session = welcomed()
    said(session, "PRIVMSG seas :" + text)
    assert request(session)["text"] == "/me lower"


def test_a_ctcp_mark_inside_an_action_is_a_space():
    """(a re-attack's "\x01ACTION waves\x01 extra" reached client.py users with its mark)"""
    session = welcomed()
    said(session, "PRIVMSG seas :\x01ACTION waves\x01 extra")
    assert request(session)["text"] == "/me waves  extra"


def test_echo_message_of_a_long_action_is_one_action_a_line():
    session = welcomed(caps=("echo-message",))
    text = " ".join(f"w{i:03}" for i in range(97))
    said(session, "PRIVMSG seas :\x01ACTION " + text + "\x01")
    lines = answer(session, "ok", stored=False)
    assert len(lines) == 2
    for line in lines:
        assert line.startswith(f"{ME}PRIVMSG seas :\x01ACTION ") and line.endswith("\x01")


# -- login refusals -------------------------------------------------------------------------------

REFUSALS = [
    ({"code": "wrong_password", "attempts_left": 2},
     "Wrong password (2 more and the name is blocked for a while)"),
    ({"code": "too_many_attempts", "seconds": 30},
     "Wrong password: the name is blocked for 30 s"),
    ({"code": "locked", "seconds": 12},
     "This name is blocked for a while after wrong passwords; try again in 12 s"),
    ({"code": "unknown_user"}, "No account is called columbia"),
    ({"code": "slow_down", "seconds": 5,
      "message": "too many failed logins from your address; try again in 5 s"},
     "Too many failed logins from your address; try again in 5 s"),
    ({"code": "slow_down", "seconds": 2, "message": "too many logins just now; try again in 2 s"},
     "Too many logins just now; try again in 2 s"),
    ({"code": "unavailable", "seconds": 1},
     "The server cannot log anyone in just now; try again in a moment"),
    ({"code": "bad_field"}, "That name or password cannot be used here"),
    ({"code": "something_new"}, "Login refused"),
]


@pytest.mark.parametrize("fields, text", REFUSALS)
def test_a_login_refused_after_pass_gets_464_and_error_and_hangs_up(fields, text):
    session = new_session()
    registered(session)
    assert answer(session, "error", **fields) == [
        f"{S}464 columbia :{text}", f"ERROR :Closing link: {text}"]
    assert session.hangup == "login refused" and session.gone
    assert said(session, "PASS again") == []


@pytest.mark.parametrize("fields, text", REFUSALS)
def test_a_login_refused_after_sasl_gets_904_and_the_link_stays_open(fields, text):
    session = sasl_ready()
    said(session, "AUTHENTICATE " + sasl_blob("columbia", "pw"))
    assert answer(session, "error", **fields) == [
        f"{S}904 columbia :SASL authentication failed: {text}"]
    assert session.hangup is None and not session.gone
    assert said(session, "AUTHENTICATE PLAIN") == ["AUTHENTICATE +"]     # may try again


def test_a_refused_sasl_login_names_the_account_it_tried():
    session = sasl_ready("columbia")
    said(session, "AUTHENTICATE " + sasl_blob("nobody", "pw"))
    assert answer(session, "error", code="unknown_user") == [
        f"{S}904 columbia :SASL authentication failed: No account is called nobody"]


# -- the early lines: sent while the login is answered -------------------------------------------

def test_lines_sent_during_the_login_are_read_after_its_answer_in_order():
    session = new_session()
    registered(session)
    login = request(session)
    assert said(session, "PRIVMSG seas :early bird", "AWAY :out") == []
    lines = reply_to(session, login, "welcome", user="columbia", token="t")
    assert lines[0].startswith(f"{S}001 columbia ") and " 306 " not in "".join(lines)
    [message] = asked(session)
    assert (message["type"], message["text"]) == ("message", "early bird")
    # answers keep the order of the lines: the message's (none), then AWAY's 306
    lines = reply_to(session, message, "ok", stored=False)
    assert [line.split()[1] for line in lines] == ["306"]


def test_an_answer_that_needs_the_core_keeps_its_place_before_later_ones():
    session = welcomed()
    assert said(session, "WHO #chat", "PING x", "ISON seas", "PING y") == []
    who, ison = asked(session)
    assert reply_to(session, ison, "online", users=["seas"]) == []     # behind the WHO
    lines = reply_to(session, who, "online", users=["seas"])
    assert [line.split()[1] for line in lines] == ["352", "352", "315", "PONG", "303", "PONG"]


def test_quit_while_answers_wait_says_them_first_then_error():
    """What was asked before QUIT is answered before ERROR: a trial's echo-message client,
    its messages and QUIT sent together, got ERROR and never the echoes of its messages."""
    session = welcomed(caps={"echo-message"})
    said(session, "PRIVMSG seas :one", "PRIVMSG #chat :two")
    message, broadcast = asked(session)
    assert said(session, "QUIT :bye", "PRIVMSG seas :after") == []    # nothing more is read
    assert [r["type"] for r in asked(session)] == ["logout"] and session.hangup is None
    assert reply_to(session, message, "ok", stored=False) == [f"{ME}PRIVMSG seas one"]
    assert reply_to(session, broadcast, "ok", skipped=0) == [
        f"{ME}PRIVMSG #chat two", "ERROR :Closing link: Quit: bye"]
    assert session.hangup == "quit" and session.gone


def test_quit_with_nothing_waiting_says_error_at_once():
    session = welcomed()
    assert said(session, "QUIT :bye") == ["ERROR :Closing link: Quit: bye"]
    assert session.hangup == "quit"


def test_too_many_lines_during_the_login_close_the_link():
    session = new_session()
    registered(session)
    for number in range(MAX_EARLY_LINES):
        assert said(session, f"PRIVMSG seas :line {number}") == []
    assert said(session, "PRIVMSG seas :one too many") == [
        "ERROR :Closing link: too many lines while logging in"]
    assert session.hangup == "flood"


def test_a_welcome_after_the_flood_close_writes_nothing():
    session = new_session()
    registered(session)
    login = request(session)
    for number in range(MAX_EARLY_LINES + 1):
        said(session, f"PRIVMSG seas :line {number}")
    assert reply_to(session, login, "welcome", user="columbia", token="t") == []


def test_a_reply_to_an_unknown_id_is_ignored():
    session = welcomed()
    assert reply_to(session, {"id": "i99"}, "ok") == []


# -- the service nick ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["help", "HELP me", "frobnicate", "block", "y", "\x01ACTION x"])
def test_the_service_answers_help_to_help_and_to_what_it_does_not_know(text):
    session = welcomed()
    assert said(session, f"PRIVMSG Chat :{text}") == [service(HELP)]
    assert session.requests == []


def test_the_service_lists_who_is_online():
    session = welcomed()
    said(session, "PRIVMSG chat :online")
    assert answer(session, "online", users=["guest", "seas"]) == [service("Online: guest, seas")]


def test_the_service_says_when_nobody_else_is_online():
    session = welcomed()
    said(session, "PRIVMSG chat :online")
    assert answer(session, "online", users=[]) == [service("No other users are online.")]


def test_the_service_does_not_say_nobody_is_online_when_the_core_refused():
    session = welcomed()
    said(session, "PRIVMSG chat :online")
    assert answer(session, "error", code="slow_down", seconds=1) != [
        service("No other users are online.")]


@pytest.mark.parametrize("verb", ["block", "unblock"])
def test_the_service_blocks_and_unblocks(verb):
    session = welcomed()
    said(session, f"PRIVMSG chat :{verb} SEAS")
    req = request(session)
    assert (req["type"], req["user"]) == (verb, "seas")
    assert reply_to(session, req, "ok") == [service(f"User seas has been {verb}ed.")]


@pytest.mark.parametrize("verb, agree", [("y", True), ("yes", True), ("n", False),
                                         ("no", False)])
def test_the_service_answers_a_request_for_the_address(verb, agree):
    session = welcomed()
    said(session, f"PRIVMSG chat :{verb} seas")
    req = request(session)
    assert (req["type"], req["user"], req["agree"]) == ("consent", "seas", agree)
    assert reply_to(session, req, "ok", no_port=True) == [service(
        "You agreed; seas is told to /msg you instead, since IRC has no private talk." if agree
        else "You refused to give seas your address.")]


@pytest.mark.parametrize("fields, words", [
    ({"revoked": True}, "You took back your yes to seas."),
    ({"revoked": True, "refused": True},
     "You refused to give seas your address, and took back your earlier yes.")])
def test_the_service_says_a_no_took_back_a_yes(fields, words):
    """(a trial's IRC user, n after y, was told no question was waiting)"""
    session = welcomed()
    said(session, "PRIVMSG chat :n seas")
    assert reply_to(session, request(session), "ok", **fields) == [service(words)]


@pytest.mark.parametrize("text, code, why", [
    ("block seas", "already_blocked", "You already block seas."),
    ("unblock seas", "not_blocked", "You do not block seas."),
    ("y seas", "no_request", "seas has not asked for your address (or the question lapsed)."),
    ("block columbia", "self", "That names yourself."),
    ("block nobody", "unknown_user", "There is no user nobody.")])
def test_the_service_says_why_it_was_refused(text, code, why):
    session = welcomed()
    said(session, f"PRIVMSG chat :{text}")
    assert answer(session, "error", code=code) == [service(why)]


def test_the_service_keeps_the_case_of_a_name_in_a_refusal():
    session = welcomed(accounts=folded(("columbia", "Alice")))
    said(session, "PRIVMSG chat :block alice")
    assert answer(session, "error", code="already_blocked") == [
        service("You already block Alice.")]


@pytest.mark.parametrize("verb", ["getaddress seas", "private seas", "PRIVATE"])
def test_the_service_says_private_talk_is_for_client_py(verb):
    session = welcomed()
    assert said(session, f"PRIVMSG chat :{verb}") == [service(NO_PRIVATE)]
    assert session.requests == []


def test_logout_to_the_service_logs_out_and_closes():
    session = welcomed()
    assert said(session, "PRIVMSG chat :logout") == ["ERROR :Closing link: Quit: logout"]
    assert request(session) == {"id": "i3", "token": "t", "type": "logout", "reason": "logout"}
    assert session.hangup == "quit" and session.token is None


# -- SILENCE -------------------------------------------------------------------------------------

def test_silence_with_no_mask_ends_an_empty_list():
    session = welcomed()
    assert said(session, "SILENCE") == [
        f"{S}272 columbia :End of silence list (this server lists none here: /msg chat help)"]
    assert session.requests == []


@pytest.mark.parametrize("mask, verb, sign", [("+seas", "block", "+"), ("-Seas", "unblock", "-"),
                                              ("seas", "block", "+"),
                                              ("+SEAS!*@*", "block", "+"),
                                              ("-seas!seas@chat", "unblock", "-")])
def test_silence_blocks_and_unblocks_and_echoes_the_account(mask, verb, sign):
    session = welcomed()
    said(session, f"SILENCE {mask}")
    req = request(session)
    assert (req["type"], req["user"]) == (verb, "seas")
    assert reply_to(session, req, "ok") == [f"{ME}SILENCE {sign}seas"]


@pytest.mark.parametrize("masks", [",", "+", "-", "+,-"])
def test_silence_of_no_name_asks_nothing(masks):
    """(a trial's "SILENCE ," was answered with a field check's words, "SILENCE +" with
    "There is no user +")"""
    session = welcomed()
    assert said(session, f"SILENCE {masks}") == [] and session.requests == []


def test_silence_takes_several_masks():
    session = welcomed()
    said(session, "SILENCE +seas,-guest")
    assert [(r["type"], r["user"]) for r in asked(session)] == [("block", "seas"),
                                                                ("unblock", "guest")]


@pytest.mark.parametrize("mask, code", [("+seas", "already_blocked"), ("-seas", "not_blocked")])
def test_silence_echoes_even_when_there_was_nothing_to_change(mask, code):
    session = welcomed()
    said(session, f"SILENCE {mask}")
    assert answer(session, "error", code=code) == [f"{ME}SILENCE {mask}"]


@pytest.mark.parametrize("mask, code, why", [
    ("+nobody", "unknown_user", "There is no user nobody."),
    ("+columbia", "self", "That names yourself."),
    ("-seas", "unavailable", "The server cannot store messages just now: send it again in a "
                             "moment.")])
def test_silence_refusals_are_notices(mask, code, why):
    session = welcomed()
    said(session, f"SILENCE {mask}")
    assert answer(session, "error", code=code) == [service(why)]


# -- MODE, TOPIC ---------------------------------------------------------------------------------

def test_mode_of_the_room_shows_its_fixed_modes():
    assert said(welcomed(), "MODE #Chat") == [f"{S}324 columbia #chat +nt"]


@pytest.mark.parametrize("flag", ["+b", "b"])
def test_mode_b_of_the_room_is_an_empty_ban_list(flag):
    assert said(welcomed(), f"MODE #chat {flag}") == [
        f"{S}368 columbia #chat :End of channel ban list"]


@pytest.mark.parametrize("change", ["+b x!*@evil", "-b x!*@evil", "-b", "+e x!*@*", "I *!*@*"])
def test_setting_a_list_of_the_room_gets_482_not_the_list(change):
    """Answered as a query, a ban seemed set: irssi showed nothing (a trial's)."""
    assert said(welcomed(), f"MODE #chat {change}") == [
        f"{S}482 columbia #chat :The room's modes are fixed"]


def test_setting_a_mode_of_the_room_gets_482():
    assert said(welcomed(), "MODE #chat +m") == [
        f"{S}482 columbia #chat :The room's modes are fixed"]


def test_mode_of_ones_own_nick_in_another_case_shows_plus_i():
    assert said(welcomed(), "MODE COLUMBIA") == [f"{S}221 columbia +i"]


@pytest.mark.parametrize("flags", ["+i", "-i", "i"])
def test_mode_i_on_ones_own_nick_is_taken_quietly(flags):
    assert said(welcomed(), f"MODE columbia {flags}") == []


@pytest.mark.parametrize("flags", ["+w", "-x", "+iw"])
def test_another_user_mode_on_ones_own_nick_is_unknown(flags):
    assert said(welcomed(), f"MODE columbia {flags}") == [f"{S}501 columbia :Unknown MODE flag"]


def test_mode_of_another_user_gets_502():
    assert said(welcomed(), "MODE seas +i") == [
        f"{S}502 columbia :Can't change mode for other users"]


def test_mode_of_another_channel_gets_403():
    assert said(welcomed(), "MODE #other") == [f"{S}403 columbia #other :No such channel"]


def test_mode_with_no_target_gets_461():
    assert said(welcomed(), "MODE") == [f"{S}461 columbia MODE :Not enough parameters"]


def test_topic_of_the_room_is_the_fixed_topic():
    assert said(welcomed(), "TOPIC #chat") == [f"{S}332 columbia #chat :{TOPIC}"]


@pytest.mark.parametrize("raw", ["TOPIC #chat :new words", "TOPIC #chat :"])
def test_setting_the_topic_gets_482(raw):
    assert said(welcomed(), raw) == [f"{S}482 columbia #chat :The room's topic is fixed"]


def test_topic_of_another_channel_gets_403():
    assert said(welcomed(), "TOPIC #other") == [f"{S}403 columbia #other :No such channel"]


def test_topic_with_no_channel_gets_461():
    assert said(welcomed(), "TOPIC") == [f"{S}461 columbia TOPIC :Not enough parameters"]


# -- LIST, LUSERS, MOTD, AWAY ---------------------------------------------------------------------

def test_list_answers_from_the_online_list():
    session = welcomed()
    said(session, "LIST")
    assert answer(session, "online", users=["guest", "seas"]) == [
        f"{S}321 columbia Channel :Users  Name", f"{S}322 columbia #chat 3 :{TOPIC}",
        f"{S}323 columbia :End of /LIST"]


def test_list_of_another_channel_lists_nothing():
    session = welcomed()
    lines = said(session, "LIST #other")
    if session.requests:
        lines += answer(session, "online", users=["seas"])
    assert not any(" 322 " in line for line in lines)


def test_lusers_counts_everyone_online():
    session = welcomed()
    said(session, "LUSERS")
    assert answer(session, "online", users=["guest", "seas"]) == [
        f"{S}251 columbia :There are 3 users and 0 invisible on 1 servers",
        f"{S}255 columbia :I have 3 clients and 0 servers",
        f"{S}265 columbia 3 3 :Current local users 3, max 3",
        f"{S}266 columbia 3 3 :Current global users 3, max 3"]


def test_lusers_max_is_the_most_counted_since_the_start():
    """(irssi and irctest read 265/266; a trial's LUSERS had neither)"""
    session = welcomed()
    said(session, "LUSERS")
    answer(session, "online", users=["guest", "seas"])
    said(session, "LUSERS")
    lines = answer(session, "online", users=[])
    assert lines[-2:] == [f"{S}265 columbia 1 3 :Current local users 1, max 3",
                          f"{S}266 columbia 1 3 :Current global users 1, max 3"]


def test_motd_is_the_one_shown_at_login():
    lines = said(welcomed(), "MOTD")
    assert [line.split()[1] for line in lines] == ["375", "372", "372", "376"]
    assert "Everyone logged in is in #chat" in lines[1]


def test_empty_names_in_a_target_list_are_skipped():
    session = welcomed()
    assert said(session, "JOIN ,#other,") == [
        f"{S}403 columbia #other :No such channel: this server has one room, #chat"]
    said(session, "PRIVMSG ,seas :hi")
    assert [(r["type"], r["to"]) for r in session.requests] == [("message", "seas")]


def test_a_long_message_to_oneself_comes_back_in_lines_that_fit():
    lines = said(welcomed(), "PRIVMSG columbia :" + "x" * 480)
    assert len(lines) == 2 and all(len(line.encode()) <= 512 for line in lines)


def test_away_with_a_message_marks_away():
    assert said(welcomed(), "AWAY :gone fishing") == [
        f"{S}306 columbia :You have been marked as being away"]


@pytest.mark.parametrize("raw", ["AWAY", "AWAY :"])
def test_away_without_a_message_unmarks(raw):
    assert said(welcomed(), raw) == [f"{S}305 columbia :You are no longer marked as being away"]


# -- USERHOST, WHO, WHOIS, ISON, NAMES -------------------------------------------------------------

def test_userhost_answers_for_those_online_in_their_account_s_case():
    session = welcomed()
    said(session, "USERHOST SEAS nobody guest Columbia")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}302 columbia :seas=+seas@chat columbia=+~u@chat"]      # (as WHO shows them)


def test_userhost_marks_an_away_user_with_a_minus():
    session = welcomed()
    said(session, "AWAY :lunch", "USERHOST columbia")
    assert answer(session, "online", users=[]) == [f"{S}302 columbia columbia=-~u@chat"]


def test_userhost_with_no_nick_gets_461():
    assert said(welcomed(), "USERHOST") == [f"{S}461 columbia USERHOST :Not enough parameters"]


def test_who_with_a_nick_mask_lists_that_user_only():
    session = welcomed()
    said(session, "WHO Seas")
    assert answer(session, "online", users=["guest", "seas"]) == [
        f"{S}352 columbia #chat seas chat {SERVER} seas H :0 seas",
        f"{S}315 columbia Seas :End of WHO list"]


def test_who_of_someone_not_online_ends_an_empty_list():
    session = welcomed()
    said(session, "WHO guest")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}315 columbia guest :End of WHO list"]


@pytest.mark.parametrize("raw, mask", [("WHO", "*"), ("WHO #chat", "#chat"), ("WHO 0", "0")])
def test_who_of_the_room_or_everyone_lists_everyone_online(raw, mask):
    session = welcomed()
    said(session, raw)
    assert answer(session, "online", users=["seas"]) == [
        f"{S}352 columbia #chat ~u chat {SERVER} columbia H :0 u",
        f"{S}352 columbia #chat seas chat {SERVER} seas H :0 seas",
        f"{S}315 columbia {mask} :End of WHO list"]


def test_who_masks_match_with_wildcards_and_away_is_g():
    session = welcomed()
    said(session, "AWAY :lunch")
    said(session, "WHO c?lum*")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}352 columbia #chat ~u chat {SERVER} columbia G :0 u",
        f"{S}315 columbia c?lum* :End of WHO list"]


def test_who_and_whois_after_an_away_in_the_same_write_see_it_as_it_was_then():
    """Answers keep the order of the lines: `AWAY :x`, `WHO me`, `AWAY`, `WHO me` in one
    write showed H twice, and WHOIS after `AWAY :one` no 301 (a trial's)."""
    session = welcomed()
    lines = said(session, "AWAY :one", "WHO columbia", "WHOIS columbia", "AWAY", "WHO columbia")
    first, whois, second = asked(session)
    reply_to(session, second, "online", users=[])
    reply_to(session, whois, "online", users=[])
    lines += reply_to(session, first, "online", users=[])
    assert [line for line in lines if " 352 " in line or " 30" in line] == [
        f"{S}306 columbia :You have been marked as being away",
        f"{S}352 columbia #chat ~u chat {SERVER} columbia G :0 u",
        f"{S}301 columbia columbia one",
        f"{S}305 columbia :You are no longer marked as being away",
        f"{S}352 columbia #chat ~u chat {SERVER} columbia H :0 u"]
    said(session, "WHO columbia")
    assert f"{S}352 columbia #chat ~u chat {SERVER} columbia H :0 u" in answer(
        session, "online", users=[])


@pytest.mark.parametrize("raw, mask", [("WHO #chat o", "#chat"), ("WHO * o%tcuhnfdar,7", "*")])
def test_who_of_operators_lists_nobody_for_there_are_none(raw, mask):
    """(a trial's `WHO #chat o` listed everyone, where ngIRCd lists nobody)"""
    session = welcomed()
    said(session, raw)
    assert answer(session, "online", users=["seas"]) == [
        f"{S}315 columbia {mask} :End of WHO list"]


def test_who_masks_match_the_user_name_and_real_name_too():
    """(RFC 2812: a trial's matched the nick alone)"""
    session = welcomed()
    said(session, "WHO ~u")                     # our user name, from USER
    assert answer(session, "online", users=["seas"]) == [
        f"{S}352 columbia #chat ~u chat {SERVER} columbia H :0 u",
        f"{S}315 columbia ~u :End of WHO list"]


def test_whowas_answers_an_account_not_online_as_one_that_was():
    """irssi sends WHOWAS by itself after a WHOIS's 401 and shows only its answer: a 421 made
    /whois of an absent user say "WHOWAS Unknown command", a 406 "There is no such nick" for
    an account a message would reach (trials')."""
    session = welcomed()
    said(session, "WHOWAS Seas")
    assert answer(session, "online", users=[]) == [
        f"{S}314 columbia seas seas chat * :not online (a message sent now waits for their "
        f"next login), or one of you blocks the other",
        f"{S}312 columbia seas chat.server :the chat room",
        f"{S}369 columbia seas :End of WHOWAS"]
    said(session, "WHOWAS seas")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}406 columbia seas :Online now: WHOIS tells more",
        f"{S}369 columbia seas :End of WHOWAS"]
    said(session, "WHOWAS nobody 1")
    assert answer(session, "online", users=[]) == [
        f"{S}406 columbia nobody :There was no such nickname",
        f"{S}369 columbia nobody :End of WHOWAS"]
    said(session, "WHOWAS seas,nobody")             # each nick answered (a trial's was one)
    assert [line.split()[1] for line in answer(session, "online", users=[])] == [
        "314", "312", "369", "406", "369"]
    assert said(session, "WHOWAS") == [f"{S}431 columbia :No nickname given"]


def test_invite_and_kick_say_why_they_do_nothing_here():
    session = welcomed()
    assert said(session, "INVITE seas #chat") == [
        f"{S}443 columbia seas #chat :is in the room once logged in: everyone is"]
    assert said(session, "KICK #chat seas :go") == [
        f"{S}482 columbia #chat :Nobody is a channel operator here: /msg chat block <nick> to "
        f"stop hearing from someone"]
    assert said(session, "INVITE seas #other") == [f"{S}403 columbia #other :No such channel"]
    assert said(session, "KICK #other seas") == [f"{S}403 columbia #other :No such channel"]
    assert said(session, "KICK #chat") == [f"{S}461 columbia KICK :Not enough parameters"]
    assert session.requests == []


def test_the_rooms_exception_and_invite_lists_are_empty_lists():
    session = welcomed()
    assert said(session, "MODE #chat e", "MODE #chat +I") == [
        f"{S}349 columbia #chat :End of channel exception list",
        f"{S}347 columbia #chat :End of channel invite list"]


def test_cap_end_during_a_sasl_exchange_aborts_it_with_906():
    session = new_session()
    said(session, "CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
    assert said(session, "CAP END")[0] == f"{S}906 * :SASL authentication aborted"
    assert session.sasl is None


def test_tagmsg_is_taken_and_passes_nothing_on():
    session = welcomed(caps=("message-tags",))
    assert said(session, "@+typing=active TAGMSG seas") == [] and session.requests == []


def test_a_target_named_twice_gets_the_message_once():
    session = welcomed()
    said(session, "PRIVMSG seas,SEAS,#chat,seas :dup")
    assert [(r["type"], r.get("to")) for r in asked(session)] == [
        ("message", "seas"), ("broadcast", None)]


def test_an_empty_ctcp_is_named_as_such():
    session = welcomed()
    assert said(session, "PRIVMSG seas :\x01\x01")[0].endswith(
        ":CTCP (empty) is not passed on here: only text and /me reach other users.")


def test_whois_of_oneself_shows_the_user_line_and_away():
    session = welcomed()
    said(session, "AWAY :lunch")
    said(session, "WHOIS columbia")
    lines = answer(session, "online", users=[])
    assert lines[:2] == [f"{S}311 columbia columbia ~u chat * u",
                         f"{S}301 columbia columbia lunch"]


def test_whois_of_someone_online():
    session = welcomed()
    said(session, "WHOIS SEAS")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}311 columbia seas seas chat * seas", f"{S}319 columbia seas #chat",
        f"{S}312 columbia seas {SERVER} :the chat room",
        f"{S}330 columbia seas seas :is logged in as",
        f"{S}318 columbia SEAS :End of /WHOIS list"]


def test_whois_of_an_account_that_is_not_online_is_401_saying_a_message_waits():
    session = welcomed()
    said(session, "WHOIS guest")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}401 columbia guest :Not online (a message sent now waits for their next login), "
        "or one of you blocks the other",
        f"{S}318 columbia guest :End of /WHOIS list"]


def test_whois_of_an_unknown_nick_is_401_no_such_nick():
    session = welcomed()
    said(session, "WHOIS server.name nobody")       # the nick is the last parameter
    assert answer(session, "online", users=["seas"]) == [
        f"{S}401 columbia nobody :No such nick", f"{S}318 columbia nobody :End of /WHOIS list"]


def test_whois_of_a_list_of_nicks_answers_each_then_ends_once():
    session = welcomed()
    said(session, "WHOIS seas,nobody,,")
    assert answer(session, "online", users=["seas"]) == [
        f"{S}311 columbia seas seas chat * seas", f"{S}319 columbia seas #chat",
        f"{S}312 columbia seas {SERVER} :the chat room",
        f"{S}330 columbia seas seas :is logged in as", f"{S}401 columbia nobody :No such nick",
        f"{S}318 columbia seas,nobody,, :End of /WHOIS list"]


def test_whois_answers_for_a_bounded_number_of_nicks():
    session = welcomed()
    said(session, "WHOIS " + ",".join(f"n{i}" for i in range(50)))
    lines = answer(session, "online", users=[])
    assert len(lines) == 9 and lines[-1].endswith(":End of /WHOIS list")


def test_whois_with_no_nick_gets_431():
    session = welcomed()
    assert said(session, "WHOIS") == [f"{S}431 columbia :No nickname given"]
    assert session.requests == []


def test_ison_answers_with_the_names_online_as_the_client_wrote_them():
    session = welcomed()
    said(session, "ISON :Seas nobody guest COLUMBIA")
    assert answer(session, "online", users=["seas"]) == [f"{S}303 columbia :Seas COLUMBIA"]


def test_ison_and_the_end_of_whois_are_cut_between_nicks_never_in_one():
    """(a trial's ISON of seven 61-character nicks came back as one 512-byte 303 ending in
    half a nick, the real one missing; its WHOIS of eight, a 318 without its words)"""
    long_names = [f"u{n:02}" + "x" * 57 for n in range(8)]
    session = welcomed()
    said(session, "ISON " + " ".join(long_names))
    lines = answer(session, "online", users=long_names)
    assert [line.split()[1] for line in lines] == ["303", "303"]
    assert all(len(line.encode()) <= 510 for line in lines)
    assert " ".join(line.split(" ", 3)[3].lstrip(":") for line in lines).split() == long_names
    said(session, "WHOIS " + ",".join(long_names))
    end = answer(session, "online", users=[])[-1]
    assert len(end.encode()) <= 510 and end.endswith(" :End of /WHOIS list")
    asked = end.split()[3].split(",")
    assert asked == long_names[:len(asked)] and len(asked) >= 6
    said(session, "WHOIS " + "é" * 240)            # one nick longer than the line: cut, in
    end = answer(session, "online", users=[])[-1]   # a character's bounds, the words kept
    assert len(end.encode()) <= 510 and end.endswith(" :End of /WHOIS list")


def test_ison_with_no_nick_gets_461():
    assert said(welcomed(), "ISON") == [f"{S}461 columbia ISON :Not enough parameters"]


def test_names_of_the_room_lists_everyone_online():
    session = welcomed()
    said(session, "NAMES #chat")
    assert answer(session, "online", users=["guest", "seas"]) == [
        f"{S}353 columbia = #chat :columbia guest seas",
        f"{S}366 columbia #chat :End of /NAMES list"]


def test_names_of_many_users_comes_in_several_lines():
    session = welcomed()
    said(session, "NAMES")
    users = [f"user{i:03}" for i in range(100)]         # 800 characters of names
    lines = answer(session, "online", users=users)
    rows = [line.split(" :", 1)[1].split() for line in lines[:-1]]
    assert len(rows) >= 2 and all(line.startswith(f"{S}353 columbia = #chat :")
                                  for line in lines[:-1])
    assert [name for row in rows for name in row] == ["columbia", *users]
    assert all(len(line.encode()) + 2 <= 512 for line in lines)
    # each line as full as it can be: the next line's first name would not have fitted
    assert all(len((line + " " + after[0]).encode()) + 2 > 512
               for line, after in zip(lines, rows[1:]))
    assert lines[-1] == f"{S}366 columbia #chat :End of /NAMES list"


def test_names_of_users_with_names_of_several_bytes_a_character_all_come_within_512_bytes():
    """(a trial's 51 users with CJK names: cut at 380 characters, lines passed 512 bytes and
    lost 23 names to the line's end, one of them cut in the middle)"""
    session = welcomed()
    said(session, "NAMES")
    users = ["".join(chr(0x4E00 + 8 * n + k) for k in range(8)) for n in range(50)]
    lines = answer(session, "online", users=users)
    rows = [line.split(" :", 1)[1].split() for line in lines[:-1]]
    assert [name for row in rows for name in row] == ["columbia", *users]
    assert all(len(line.encode()) + 2 <= 512 for line in lines)


def test_names_of_another_channel_is_366_alone():
    session = welcomed()
    assert said(session, "NAMES #other") == [f"{S}366 columbia #other :End of /NAMES list"]
    assert session.requests == []


# -- JOIN, PART ----------------------------------------------------------------------------------

def test_leaving_all_channels_is_told_the_room_cannot_be_left():
    session = welcomed()
    assert said(session, "JOIN 0") == [
        service("Everyone logged in is in #chat; QUIT to leave it.")]
    assert session.requests == []


@pytest.mark.parametrize("raw", ["JOIN #chat", "JOIN #CHAT key"])
def test_joining_the_room_again_is_not_answered_as_ngircd_does(raw):
    """(answered, a second JOIN made irssi drop its window of the room at each reconnect)"""
    session = welcomed()
    assert said(session, raw) == [] and session.requests == []


def test_joining_another_channel_gets_403_for_it_alone():
    session = logged_in_not_joined()
    said(session, "JOIN #chat,#other")
    lines = answer(session, "online", users=[])     # after the room's NAMES, in order
    assert lines[-1] == f"{S}403 columbia #other :No such channel: this server has one room, #chat"
    assert [line.split()[1] for line in lines[:-1]] == ["353", "366"]
    assert said(welcomed(), "JOIN #chat,#other") == [
        f"{S}403 columbia #other :No such channel: this server has one room, #chat"]


def test_join_with_no_channel_gets_461():
    assert said(welcomed(), "JOIN") == [f"{S}461 columbia JOIN :Not enough parameters"]


def test_parting_the_room_is_echoed_and_the_room_joined_again_with_a_notice():
    """(a client closes its window of the room as it parts, and drops what comes for a room
    it is not in, its PONGs acknowledging it: WeeChat lost every room message after /close)"""
    session = welcomed()
    lines = said(session, "PART #chat :see you")
    assert lines[:2] == [":columbia!~u@chat PART #chat :see you", ":columbia!~u@chat JOIN #chat"]
    assert [line.split()[1] for line in lines[2:]] == ["332"]
    lines = answer(session, "online", users=[])
    assert [line.split()[1] for line in lines] == ["353", "366", "NOTICE"]
    assert lines[-1] == service("Everyone logged in is in #chat; QUIT to leave it.")


def test_the_room_is_joined_again_at_most_every_two_seconds_and_once_a_line():
    """(a client that parted at each join looped 8,000 times a second; "PART #chat,#chat,..."
    was answered 80 times)"""
    session = welcomed()
    lines = said(session, "PART #chat,#CHAT,#chat,#other")
    assert [line.split()[1] for line in lines] == ["403", "PART", "JOIN", "332"]
    answer(session, "online", users=[])
    session.from_client(parse(b"PART #chat"), WALL + 1.0)      # parted again at once
    assert [line.split()[1] for line in written(session)] == ["PART", "JOIN"]   # (in again)
    session.from_client(parse(b"PART #chat"), WALL + 2.5)
    assert [line.split()[1] for line in written(session)] == ["PART", "JOIN", "332"]


def test_parting_another_channel_gets_403():
    assert said(welcomed(), "PART #other") == [f"{S}403 columbia #other :No such channel"]


def test_part_with_no_channel_gets_461():
    assert said(welcomed(), "PART") == [f"{S}461 columbia PART :Not enough parameters"]


# -- deliveries -----------------------------------------------------------------------------------

def logged_in_not_joined():
    """A session welcomed, that has not joined the room yet."""
    session = new_session()
    registered(session)
    answer(session, "welcome", user="columbia", token="t")
    assert session.welcomed and not session.joined and session.requests == []
    return session


@pytest.mark.parametrize("join", [None, "JOIN #chat"])
def test_room_messages_before_the_join_wait_for_its_names_and_presence_is_dropped(join):
    """Joined when the client asks, or when the glue's JOIN_WAIT_S is up (join_now); a
    message to the user goes at once."""
    session = logged_in_not_joined()
    assert delivered(session, "broadcast", **{"from": "seas", "text": "all", "seq": 3}) == []
    assert delivered(session, "presence", user="guest", online=True) == []
    assert delivered(session, "message", **{"from": "seas", "text": "hi there", "seq": 4}) == [
        f"{SEAS}PRIVMSG columbia :hi there"]
    assert session.ping_for_ack(10.0) is None and not session.lines    # (it would cover 3)
    assert (said(session, join) if join else (session.join_now(), written(session))[1]) == [
        ":columbia!~u@chat JOIN #chat", f"{S}332 columbia #chat :{TOPIC}"]
    assert answer(session, "online", users=["guest", "seas"]) == [
        f"{S}353 columbia = #chat :columbia guest seas",
        f"{S}366 columbia #chat :End of /NAMES list", f"{SEAS}PRIVMSG #chat all"]
    assert session.shown_seq == 4
    session.ping_for_ack(10.0)
    assert written(session) == [f"PING {ACK_TOKEN}4"]
    session.join_now()                              # (the timer, after the client's JOIN)
    assert written(session) == [] and session.requests == []


def test_a_part_of_the_room_before_its_join_joins_it_and_what_waited_goes():
    """(a trial's PART in the first 3 s: the held room messages were never shown, and no
    acknowledgement PING went for the rest of the connection)"""
    session = logged_in_not_joined()
    delivered(session, "broadcast", **{"from": "seas", "text": "all", "seq": 3})
    assert [line.split()[1] for line in said(session, "PART #chat")] == ["PART", "JOIN", "332"]
    lines = answer(session, "online", users=["seas"])
    assert [line.split()[1] for line in lines[:2]] == ["353", "366"]
    assert f"{SEAS}PRIVMSG #chat all" in lines
    session.ping_for_ack(10.0)
    assert written(session) == [f"PING {ACK_TOKEN}3"]


def test_messages_before_the_welcome_wait_for_it():
    session = new_session()
    registered(session)
    login = request(session)
    assert delivered(session, "message", **{"from": "seas", "text": "early", "seq": 2}) == []
    lines = reply_to(session, login, "welcome", user="columbia", token="t")
    assert lines[-1] == f"{SEAS}PRIVMSG columbia early"


def test_logged_out_before_the_room_is_joined_closes_at_once():
    session = logged_in_not_joined()
    assert delivered(session, "logged_out", reason="elsewhere") == [
        "ERROR :Closing link: This account logged in elsewhere"]
    assert session.hangup == "logged in elsewhere" and session.token is None
    session.connection_lost()
    assert asked(session) == []         # no logout: the other login owns the name now


def test_a_session_timed_out_is_closed_as_a_ping_timeout_not_a_login_elsewhere():
    session = welcomed()
    assert delivered(session, "logged_out", reason="timed_out", seconds=31) == [
        "ERROR :Closing link: Ping timeout: the server heard nothing from this connection in "
        "time"]
    assert session.hangup == "timed out" and session.token is None


def test_logged_out_after_joining_closes_too():
    session = welcomed()
    assert delivered(session, "logged_out", reason="elsewhere") == [
        "ERROR :Closing link: This account logged in elsewhere"]
    assert session.gone


def test_presence_is_join_and_quit():
    session = welcomed()
    assert delivered(session, "presence", user="seas", online=True) == [f"{SEAS}JOIN #chat"]
    assert delivered(session, "presence", user="seas", online=False) == [
        f"{SEAS}QUIT :Logged out"]
    # the server ended a silent session: the quit says so, as an IRC server's ping time-out
    assert delivered(session, "presence", user="seas", online=False, reason="timed out") == [
        f"{SEAS}QUIT :timed out"]
    # a native user's words are never CTCP (a hostile trial's logout reason was)
    assert delivered(session, "presence", user="seas", online=False,
                     reason="\x01ACTION x\x01") == [f"{SEAS}QUIT : ACTION x "]


def test_a_presence_batch_is_told_in_order_skipping_oneself():
    session = welcomed()
    assert delivered(session, "presence", changes=[["seas", True], ["columbia", True],
                                                   ["guest", True], ["seas", False]]) == [
        f"{SEAS}JOIN #chat", ":guest!guest@chat JOIN #chat", f"{SEAS}QUIT :Logged out"]


def test_a_presence_frame_s_lines_are_made_once_for_all_and_each_skips_its_own():
    shared = Shared()
    columbia, seas, guest = (welcomed(name, shared=shared) for name in ("columbia", "seas",
                                                                         "guest"))
    frame = {"type": "presence", "changes": [["seas", True], ["columbia", True]]}
    for session in (columbia, seas, guest):
        session.from_core(frame, WALL)
    assert guest.lines == [b":seas!~u@chat JOIN #chat\r\n",
                           b":columbia!~u@chat JOIN #chat\r\n"]
    assert columbia.lines == guest.lines[:1] and seas.lines == guest.lines[1:]
    assert columbia.lines[0] is guest.lines[0]          # the same bytes, made once
    frame = {"type": "presence", "changes": [["seas", False]]}     # a new frame: new lines
    guest.from_core(frame, WALL)
    assert guest.lines[-1] == b":seas!~u@chat QUIT :Logged out\r\n"


def test_presence_waits_behind_an_answer_not_yet_given():
    session = welcomed()
    said(session, "WHO #chat")
    who = request(session)
    assert delivered(session, "presence", user="seas", online=True) == []
    assert reply_to(session, who, "online", users=["seas"])[-1] == f"{SEAS}JOIN #chat"


def test_presence_about_oneself_is_not_told():
    assert delivered(welcomed(), "presence", user="columbia", online=True) == []


@pytest.mark.parametrize("kind, fields, text", [
    ("consent_request", {"from": "seas"},
     "seas asks for your address for a private talk. IRC has none, but you can answer: /msg chat "
     "y seas (they will be told to /msg you) or /msg chat n seas."),
    ("consent_lapsed", {"user": "seas"}, "seas's request for your address lapsed."),
    ("address_refused", {"user": "seas"}, "seas refused to give you their address."),
    ("address_lapsed", {"user": "seas"}, "seas did not answer your request."),
    ("address_lapsed", {"user": "seas", "unreached": True},
     "seas could not be asked: their client did not take the question."),
    ("address_unavailable", {"user": "seas"},
     "seas agreed, but has no address to give: /msg them.")])
def test_peer_to_peer_notices_are_told_by_the_service(kind, fields, text):
    assert delivered(welcomed(), kind, **fields) == [service(text)]


@pytest.mark.parametrize("kind", ["address", "address_revoked", "consent_revoked", "bye"])
def test_other_peer_to_peer_frames_are_silent(kind):
    assert delivered(welcomed(), kind, user="seas", host="h", port=1, key="k") == []


def test_a_live_message_has_neither_tag_nor_prefix():
    session = welcomed()
    assert delivered(session, "message", **{"from": "seas", "text": "hello there", "seq": 9,
                                            "at": WALL}) == [f"{SEAS}PRIVMSG columbia :hello there"]


def test_an_offline_message_without_server_time_begins_with_when_it_was_sent():
    session = welcomed()
    assert delivered(session, "message", **{"from": "seas", "text": "hello there", "seq": 9,
                                            "at": WALL, "offline": True}) == [
        f"{SEAS}PRIVMSG columbia :[sent 2025-12-05 16:00 UTC] hello there"]


@pytest.mark.parametrize("kind, target", [("message", "columbia"), ("broadcast", "#chat")])
def test_a_message_sent_again_long_after_its_time_says_when_it_was_sent(kind, target):
    """(a trial's room message, sent again at a reconnect 3 minutes later, read as just said)"""
    session = welcomed()
    late = WALL - REPLAYED_S
    assert delivered(session, kind, **{"from": "seas", "text": "hello", "seq": 9, "at": late}) == [
        f"{SEAS}PRIVMSG {target} :[sent 2025-12-05 15:59 UTC] hello"]
    assert delivered(session, kind, **{"from": "seas", "text": "hi", "seq": 10,
                                       "at": late + 0.5}) == [f"{SEAS}PRIVMSG {target} hi"]


def test_an_offline_message_with_server_time_has_a_time_tag_and_says_when_too():
    """irssi asks for server-time and, as it is set up, shows when a line came: a kept
    message read as new (a trial's)."""
    session = welcomed(caps=("server-time",))
    assert delivered(session, "message", **{"from": "seas", "text": "hello there", "seq": 9,
                                            "at": WALL, "offline": True}) == [
        f"@time={STAMP} {SEAS}PRIVMSG columbia :[sent 2025-12-05 16:00 UTC] hello there"]


def test_a_me_message_arrives_as_an_action():
    session = welcomed()
    assert delivered(session, "message", **{"from": "seas", "text": "/me waves", "seq": 9}) == [
        f"{SEAS}PRIVMSG columbia :\x01ACTION waves\x01"]


def test_a_native_users_ctcp_marks_arrive_as_text_never_as_ctcp():
    session = welcomed()
    dcc = "\x01DCC SEND evil 2130706433 4000 1\x01"
    assert delivered(session, "message", **{"from": "seas", "text": dcc, "seq": 9}) == [
        f"{SEAS}PRIVMSG columbia :" + dcc.replace("\x01", " ")]
    assert delivered(session, "message", **{"from": "seas", "text": "/me a\x01b", "seq": 10}) == [
        f"{SEAS}PRIVMSG columbia :\x01ACTION a b\x01"]      # an action's own marks only


def test_an_offline_me_message_without_server_time_is_still_an_action():
    session = welcomed()
    assert delivered(session, "message", **{"from": "seas", "text": "/me waves", "seq": 9,
                                            "at": WALL, "offline": True}) == [
        f"{SEAS}PRIVMSG columbia :\x01ACTION [sent 2025-12-05 16:00 UTC] waves\x01"]


def test_a_broadcast_is_said_in_the_room():
    session = welcomed()
    assert delivered(session, "broadcast", **{"from": "seas", "text": "hello all", "seq": 9,
                                              "at": WALL}) == [f"{SEAS}PRIVMSG #chat :hello all"]


def test_a_broadcast_s_lines_are_made_once_for_sessions_that_share():
    shared = Shared()
    first, second = welcomed(shared=shared), welcomed(shared=shared)
    frame = {"type": "broadcast", "from": "seas", "text": "hello all", "seq": 9, "at": WALL}
    first.from_core(dict(frame), WALL)
    second.from_core(dict(frame), WALL)
    assert second.lines == first.lines == [b":seas!seas@chat PRIVMSG #chat :hello all\r\n"]
    assert second.lines[0] is first.lines[0]
    assert second.shown_seq == 9


def test_a_broadcast_s_lines_differ_by_the_server_time_cap():
    shared = Shared()
    plain, timed = welcomed(shared=shared), welcomed(caps=("server-time",), shared=shared)
    again = welcomed(shared=shared)
    frame = {"type": "broadcast", "from": "seas", "text": "hello all", "seq": 9, "at": WALL}
    for session in (plain, timed, again):
        session.from_core(dict(frame), WALL)
    assert written(plain) == written(again) == [f"{SEAS}PRIVMSG #chat :hello all"]
    assert written(timed) == [f"@time={STAMP} {SEAS}PRIVMSG #chat :hello all"]


def test_a_broadcast_reaches_the_others_when_the_first_waits_on_an_answer():
    # the first session's lines wait behind its WHO's answer; the lines made for it are still
    # every other session's (they were once taken from what it had written so far: nothing,
    # and the others were sent nothing while their PONG acknowledged the message)
    shared = Shared()
    first, second = welcomed(shared=shared), welcomed(shared=shared)
    said(first, "WHO #chat")
    who = request(first)
    frame = {"type": "broadcast", "from": "seas", "text": "hello all", "seq": 9}
    first.from_core(dict(frame), WALL)
    second.from_core(dict(frame), WALL)
    assert written(second) == [f"{SEAS}PRIVMSG #chat :hello all"]
    assert written(first) == []                         # ... after the WHO's answer
    assert reply_to(first, who, "online", users=["seas"])[-1] == (
        f"{SEAS}PRIVMSG #chat :hello all")


def test_the_next_broadcast_is_not_taken_for_the_last_one():
    shared = Shared()
    first, second = welcomed(shared=shared), welcomed(shared=shared)
    for seq, text in ((9, "one"), (10, "two")):
        first.from_core({"type": "broadcast", "from": "seas", "text": text, "seq": seq}, WALL)
    second.from_core({"type": "broadcast", "from": "seas", "text": "two", "seq": 10}, WALL)
    assert written(second) == [f"{SEAS}PRIVMSG #chat two"]


# -- liveness and acknowledgements ----------------------------------------------------------------

def test_keepalive_asks_a_heartbeat_only_when_logged_in():
    session = new_session()
    session.keepalive()
    registered(session)
    login = request(session)
    session.keepalive()                 # the login is not answered yet
    assert session.requests == []
    reply_to(session, login, "welcome", user="columbia", token="t")
    asked(session)
    session.keepalive()
    assert request(session) == {"id": "i2", "token": "t", "type": "heartbeat"}


def test_keepalive_after_quit_asks_nothing():
    session = welcomed()
    said(session, "QUIT")
    asked(session)
    session.keepalive()
    assert session.requests == []


def test_connection_lost_logs_out_once():
    session = welcomed()
    session.connection_lost()
    session.connection_lost()
    assert request(session) == {"id": "i3", "token": "t", "type": "logout"}


def test_connection_lost_before_login_asks_nothing():
    session = new_session()
    said(session, "NICK columbia")
    session.connection_lost()
    assert session.requests == []


def test_connection_lost_after_quit_asks_nothing_more():
    session = welcomed()
    assert said(session, "QUIT :gone home") == ["ERROR :Closing link: Quit: gone home"]
    assert request(session)["type"] == "logout"
    session.connection_lost()
    assert session.requests == []


def deliver_seq(session, seq):
    delivered(session, "message", **{"from": "seas", "text": f"m{seq}", "seq": seq})


def test_no_ping_for_ack_until_something_numbered_was_shown():
    session = welcomed()
    assert session.ping_for_ack(0.0) is None
    delivered(session, "presence", user="seas", online=True)
    assert session.ping_for_ack(0.0) is None
    assert written(session) == []


def test_ping_for_ack_covers_what_was_shown_and_is_not_repeated():
    session = welcomed()
    deliver_seq(session, 5)
    session.ping_for_ack(0.0)
    session.ping_for_ack(0.0)
    assert written(session) == ["PING ack-5"]


def test_ack_pings_are_one_per_gap_unless_a_batch_waits():
    """A client counts its PONGs against its own flood limit: irssi (5 at once, then one per
    2.2 s) held its user's typed line back 2 s behind a PING per delivery (a trial's)."""
    session = welcomed()
    deliver_seq(session, 1)
    assert session.ping_for_ack(10.0) is None and written(session) == ["PING ack-1"]
    deliver_seq(session, 2)
    assert session.ping_for_ack(11.0) == 10.0 + ACK_PING_GAP_S       # held back till then
    assert written(session) == []
    assert session.ping_for_ack(10.0 + ACK_PING_GAP_S) is None
    assert written(session) == ["PING ack-2"]
    for seq in range(3, 3 + ACK_PING_BATCH):                          # a busy link's batch
        deliver_seq(session, seq)
    assert session.ping_for_ack(13.5) is None
    assert written(session) == [f"PING ack-{2 + ACK_PING_BATCH}"]


def test_ack_pings_are_paced_from_a_clock_that_starts_at_zero():
    """(a PING sent at time 0.0 was taken for none sent: the next went at once)"""
    session = welcomed()
    deliver_seq(session, 1)
    assert session.ping_for_ack(0.0) is None and written(session) == ["PING ack-1"]
    deliver_seq(session, 2)
    assert session.ping_for_ack(1.0) == ACK_PING_GAP_S and written(session) == []


def first_ack_ping(session, now=8.0):
    """The connection's first ack PING, which goes at once, whatever the client said."""
    deliver_seq(session, 1)
    assert session.ping_for_ack(now, heard_at=now - 0.5) is None
    assert written(session) == ["PING ack-1"]


def test_the_first_ack_ping_goes_at_once():
    """(a login's kept messages, held back while irssi asked its questions after the join,
    came again when it reconnected 5 s later: a trial's)"""
    first_ack_ping(welcomed())


def test_an_ack_ping_waits_until_the_client_has_been_quiet_for_the_gap():
    session = welcomed()
    first_ack_ping(session)
    deliver_seq(session, 2)
    assert session.ping_for_ack(10.0, heard_at=9.0) == 9.0 + ACK_PING_GAP_S
    assert written(session) == []
    assert session.ping_for_ack(9.0 + ACK_PING_GAP_S, heard_at=9.0) is None
    assert written(session) == ["PING ack-2"]


def test_an_ack_ping_held_back_by_a_client_that_keeps_talking_goes_after_a_while():
    """A client that talks at least every ACK_PING_GAP_S was never asked: a soak's showed
    messages again, up to 16 s old, at every reconnect."""
    session = welcomed()
    first_ack_ping(session, now=7.0)
    deliver_seq(session, 2)
    assert session.ping_for_ack(10.0, heard_at=9.5) == 12.5
    for now in (12.5, 15.5, 18.5):                  # it talked again each time: held back
        assert session.ping_for_ack(now, heard_at=now - 0.5) == min(
            now + ACK_PING_GAP_S - 0.5, 10.0 + ACK_PING_BUSY_S)
    assert written(session) == []
    assert session.ping_for_ack(10.0 + ACK_PING_BUSY_S, heard_at=19.9) is None
    assert written(session) == ["PING ack-2"]


def test_ping_for_ack_stops_at_ack_pings_unanswered():
    session = welcomed()
    pings = []
    for seq in range(1, ACK_PINGS + 3):
        deliver_seq(session, seq)
        session.ping_for_ack(seq * ACK_PING_GAP_S)
        pings += [line for line in written(session) if line.startswith("PING")]
    assert pings == [f"PING ack-{seq}" for seq in range(1, ACK_PINGS + 1)]


def test_a_pong_acknowledges_cumulatively_and_the_next_ping_covers_the_rest():
    session = welcomed()
    for seq in range(1, ACK_PINGS + 3):
        deliver_seq(session, seq)
        session.ping_for_ack(seq * ACK_PING_GAP_S)
    written(session)
    assert said(session, f"PONG {SERVER} :ack-3") == []
    assert session.requests == [{"type": "ack", "seq": 3}]
    session.ping_for_ack(100.0)         # (irc_glue asks after the client's lines)
    assert written(session) == [f"PING ack-{ACK_PINGS + 2}"]
    assert list(session.pinged) == [*range(4, ACK_PINGS + 1), ACK_PINGS + 2]
    asked(session)
    assert said(session, "PONG :ack-2") == []       # covered already
    assert session.requests == [] and session.acked_seq == 3


def test_no_ping_for_ack_once_gone():
    session = welcomed()
    deliver_seq(session, 5)
    said(session, "QUIT")
    assert session.ping_for_ack(0.0) is None
    assert written(session) == []


def test_message_tags_give_each_delivery_its_number_as_msgid():
    session = welcomed(caps=("message-tags",))
    lines = delivered(session, "message", **{"from": "seas", "text": "hi", "seq": 77})
    assert lines[0].startswith("@msgid=77 :seas!seas@chat PRIVMSG columbia")


def test_a_long_messages_pieces_each_have_their_own_msgid():
    """A msgid is unique (IRCv3): a client dropping repeats by it dropped the rest of a long
    message (a trial's four pieces shared one)."""
    session = welcomed(caps=("message-tags",))
    lines = delivered(session, "message", **{"from": "seas", "text": "x" * 1200, "seq": 77})
    ids = [line.split(" ", 1)[0] for line in lines]
    assert len(lines) > 2 and ids == ["@msgid=77"] + [f"@msgid=77.{n}"
                                                      for n in range(2, len(lines) + 1)]


def test_names_carry_user_and_host_with_userhost_in_names():
    session = welcomed(caps=("userhost-in-names",))
    said(session, "NAMES #chat")
    assert answer(session, "online", users=["seas"])[0].endswith(
        ":columbia!~u@chat seas!seas@chat")


def test_every_line_and_who_show_one_mask_for_a_user_with_only_a_users_safe_characters():
    """irssi kept WHO's ~user@chat for a nick whose lines came from nick!nick@chat, so a mask
    taken from WHOIS matched none of them (a trial's)."""
    shared = Shared()
    seas = new_session(shared=shared)
    said(seas, "PASS pw", "NICK seas", "USER s!e@a:s 0 * :Seas")
    assert answer(seas, "welcome", user="seas", token="t2")[0] == (
        f"{S}001 seas :Welcome to the chat room, seas!~seas@chat")
    columbia = welcomed(shared=shared)
    said(columbia, "WHO seas")
    assert answer(columbia, "online", users=["seas"])[0] == (
        f"{S}352 columbia #chat ~seas chat {SERVER} seas H :0 Seas")
    assert delivered(columbia, "message", **{"from": "seas"}, text="hi", seq=1) == [
        ":seas!~seas@chat PRIVMSG columbia hi"]
    assert delivered(columbia, "message", **{"from": "guest"}, text="yo", seq=2) == [
        ":guest!guest@chat PRIVMSG columbia yo"]        # a client.py user: its name


def test_an_account_back_by_client_py_has_its_own_mask_not_its_last_irc_logins():
    """(a trial's facebook, logged in by client.py, showed ~fbident from an IRC login before)"""
    shared, online = Shared(), set()
    seas = new_session(shared=shared, is_online=online.__contains__)
    said(seas, "PASS pw", "NICK seas", "USER s 0 * :Seas")
    answer(seas, "welcome", user="seas", token="t2")
    seas.connection_lost()                  # gone: its QUIT, and what it left, keep its mask
    columbia = welcomed(shared=shared, is_online=online.__contains__)
    assert columbia.who_is("seas") == "seas!~s@chat"
    online.add("seas")                      # then back, by client.py
    assert columbia.who_is("seas") == "seas!seas@chat"
    assert delivered(columbia, "message", **{"from": "seas"}, text="hi", seq=1) == [
        ":seas!seas@chat PRIVMSG columbia hi"]
    delivered(columbia, "presence", user="seas", online=True)
    online.discard("seas")                  # and gone again: its QUIT is its own name's too
    assert delivered(columbia, "presence", user="seas", online=False) == [
        ":seas!seas@chat QUIT :Logged out"]


def test_who_and_whois_of_another_irc_user_show_their_user_line_and_away():
    shared = Shared()
    seas = welcomed("seas", shared=shared)
    said(seas, "AWAY :at lunch")
    columbia = welcomed(shared=shared)
    said(columbia, "WHOIS seas")
    lines = answer(columbia, "online", users=["seas"])
    assert lines[:2] == [f"{S}311 columbia seas ~u chat * u", f"{S}301 columbia seas :at lunch"]
    said(columbia, "PRIVMSG seas :hi")
    assert answer(columbia, "ok", stored=False) == [f"{S}301 columbia seas :at lunch"]
    seas.connection_lost()
    said(columbia, "WHO seas")
    assert answer(columbia, "online", users=["seas"])[0] == (
        f"{S}352 columbia #chat ~u chat {SERVER} seas H :0 seas")   # gone: its mask stays


@pytest.mark.parametrize("action", ["\x01ACTION\x01", "\x01ACTION \x01", "\x01ACTION   ",
                                    "\x01ACTION", "\x01action\x01"])    # (a trial's reached all)
def test_an_empty_action_is_no_text_to_send(action):
    """(a trial's empty /me was kept, and shown as " * foobar ")"""
    session = welcomed()
    assert said(session, f"PRIVMSG #chat :{action}") == [f"{S}412 columbia :No text to send"]
    assert session.requests == []


def test_every_command_method_is_in_the_dispatch_table_and_nothing_else_is():
    """Commands are dispatched through an explicit table (irc_session.COMMANDS): a method
    named for a command and left out of it would answer 421."""
    import irc_session
    methods = {name for name in dir(IrcSession) if name.startswith("_c_")}
    assert {handler.__name__ for handler, _ in irc_session.COMMANDS.values()} == methods
    assert all("_c_" + command.lower() == handler.__name__ or handler.__name__ == (
        "_c_operator_only") for command, (handler, _) in irc_session.COMMANDS.items())


@pytest.mark.parametrize("command, numeric", [
    ("OPER a b", "491"), ("OPER", "461"), ("ADMIN other.server", "402"), ("KILL x :y", "481"), ("DIE", "481"), ("REHASH", "481"),
    ("SQUIT x :y", "481"), ("CONNECT x", "481"), ("ADMIN", "423"), ("INFO", "374"),
    ("STATS u", "219"), ("LINKS", "365"), ("USERS", "446")])
def test_operator_and_server_queries_get_their_numerics_not_421(command, numeric):
    """(a trial's /admin and /oper said "Unknown command")"""
    lines = said(welcomed(), command)
    assert any(f" {numeric} " in line for line in lines)
    assert not any(" 421 " in line for line in lines)
