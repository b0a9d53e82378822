"""The client core's peer to peer side: consent commands, addresses, links, and the listener's
checks of a peer's proof. Events in, actions out, with a hand-moved `now`."""
import pytest

import protocol

from client_events import (
    Accepted, Arm, CloseConn, EndLink, Exit, Expired, Incoming, IncomingClosed, InputEnded,
    Interrupted, Pushed,
    LinkClosed, LinkIdle, LinkIn, Log, OpenLink, SendOnLink, SendTo, Show, Fate, ShowFate,
    ShowSending, Status, TagLines,
)
from client_helpers import OK, err, hello as server_hello, logged_in, of, printed, requests
from commands import Command, Usage, parse_command
from peer import PEER_IDLE_S, PEER_PROOF_S, listener_mac, dialer_mac

KEY = "k-columbia-alice"


def sealed_address(proof="p1", salt="7", key=KEY, user="bob", port=6001):
    """The address as delivered to a listening port: its key sealed with the session's proof
    (logged_in's welcome's is p1)."""
    return {"type": "address", "user": user, "host": "10.0.0.2", "port": port, "salt": salt,
            "sealed": protocol.seal(key, proof, protocol.ADDRESS_KEY_LABEL, user, salt)}


ADDRESS = sealed_address()


def delivered(run, *frames, conn=70, asked=True):
    """Frames the server delivers on a fresh, proven connection -> the actions of the last.
    An address comes to a client that asked for it (its getaddress answered), unless not
    `asked`."""
    run.do(Incoming(conn, server_hello(conn)))
    actions = []
    for frame in frames:
        if asked and frame.get("type") == "address":
            run.client.peers.asking[frame.get("user")] = run.now
        actions = run.do(Incoming(conn, frame))
    return actions


def with_address(run):
    delivered(run, ADDRESS)
    nonces = iter(f"na{n}" for n in range(1, 100))
    run.client.peers._make_nonce = lambda: next(nonces)    # our challenges to listeners
    return run


def listener_ok(nonce="na1", key=KEY):
    """bob's listener proving the key back for our challenge `nonce`."""
    return {"type": "ok", "mac": listener_mac(key, "bob", "alice", nonce)}


def opened(run, link=1, nonce="na1"):
    """The link is challenged and both sides are proven -> the actions of the proof."""
    run.do(LinkIn(link, {"type": "challenge", "nonce": "n"}))
    return run.do(LinkIn(link, listener_ok(nonce)))


def not_delivered(*texts):
    """What the user is told of private messages a link could not deliver."""
    return ["Connect failed. Maybe the user's ip has changed.",
            *[f"Not delivered to bob: {text}" for text in texts],
            "To leave it for bob through the server, type message bob <text>."]


def sent(actions):
    return [(a.link, a.frame) for a in actions if isinstance(a, SendOnLink)]


# -- commands -----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, command", [
    ("getaddress bob", Command("getaddress", "bob")),
    ("Y bob", Command("Y", "bob")),
    ("y bob", Command("Y", "bob")),
    ("N bob", Command("N", "bob")),
    ("n  bob ", Command("N", "bob")),
    ("private bob hi  there ", Command("private", "bob", "hi  there ")),
    ("private bob", Usage("private <user> <text>")),
    ("Y", Usage("Y <user>")),
    ("getaddress bob carol", Usage("getaddress <user>")),
])
def test_peer_commands_parse(line, command):
    assert parse_command(line) == command


def test_getaddress_and_answers_send_their_requests():
    run = logged_in()
    assert requests(run.type("getaddress bob")) == [
        {"type": "getaddress", "token": "t1", "user": "bob"}]
    run.reply(OK)
    assert requests(run.type("y bob")) == [
        {"type": "consent", "token": "t1", "user": "bob", "agree": True}]
    run.reply(OK)
    assert requests(run.type("N bob")) == [
        {"type": "consent", "token": "t1", "user": "bob", "agree": False}]


@pytest.mark.parametrize("command, reply, lines", [
    ("getaddress bob", OK, ["request sent"]),
    ("getaddress bob", err("offline"), ["bob is not online. Can't get the address."]),
    ("getaddress bob", err("blocked"), ["bob has blocked you. You can't get the address."]),
    ("getaddress bob", err("unknown_user"), ["User bob does not exist."]),
    ("getaddress bob", err("self"), ["You cannot get your own address."]),   # (alice's: as typed)
    ("getaddress bob", err("already_asked"), ["You already asked bob; wait for the answer."]),
    ("Y bob", {"type": "ok", "key": KEY}, ["You agreed to a private talk with bob."]),
    ("N bob", OK, ["You refused to give bob your address."]),
    ("Y bob", err("no_request"), ["There is no request from bob waiting for your answer."]),
    ("n bob", err("no_request"), ["There is no request from bob waiting for your answer, "
                                   "nor a yes to take back."]),
    ("y nobody", err("unknown_user"), ["User nobody does not exist."]),
])
def test_peer_command_replies_are_shown(command, reply, lines):
    run = logged_in()
    run.type(command)
    assert printed(run.reply(reply)) == lines


# -- what the server delivers about addresses ---------------------------------------------------

def test_consent_request_asks_the_user():
    run = logged_in()
    assert printed(delivered(run, {"type": "consent_request", "from": "bob"})) == [
        "Do you agree to have a private talk with bob? Y bob/N bob"]


def test_y_or_n_alone_answers_the_only_question_waiting():
    """A trial's new user answered "Do you agree ... Y bob/N bob" with `y`, and read a usage."""
    run = logged_in()
    assert printed(run.type("y")) == ["Nobody is waiting for your answer."]
    delivered(run, {"type": "consent_request", "from": "bob"})
    run.type("y")
    assert run.open[run.last()] == {
        "type": "consent", "token": "t1", "user": "bob", "agree": True}
    assert printed(run.reply({"type": "ok", "key": KEY})) == [
        "You agreed to a private talk with bob."]
    assert printed(run.type("Y")) == ["Nobody is waiting for your answer."]   # answered
    delivered(run, {"type": "consent_request", "from": "carol"})
    delivered(run, {"type": "consent_request", "from": "dave"})
    assert printed(run.type("n")) == [
        "2 users are waiting for your answer (carol, dave): type N <user>."]
    delivered(run, {"type": "consent_lapsed", "user": "carol"})
    run.type("/N")
    assert run.open[run.last()] == {"type": "consent", "token": "t1", "user": "dave",
                                    "agree": False}


def test_address_is_shown_and_kept():
    run = logged_in()
    assert printed(delivered(run, ADDRESS)) == ["got address!", "bob 10.0.0.2 6001"]
    assert run.client.peers.addresses["bob"].key == KEY


def test_a_private_message_to_a_name_held_in_another_case_says_so():
    """(a trial's `private BOB hi` was told to getaddress BOB, then that BOB does not exist)"""
    run = with_address(logged_in())
    assert printed(run.type("private BOB hi")) == [
        "You have the address of bob, not of BOB: user names are case-sensitive."]
    assert not of(run.type("private BOB hi"), OpenLink)


def test_a_sealed_key_is_opened_with_the_sessions_proof():
    """(sent in clear to the listening port, a key let a trial's eavesdropper write as us)"""
    run = logged_in()                       # (its welcome's proof is p1)
    assert printed(delivered(run, sealed_address())) == ["got address!", "bob 10.0.0.2 6001"]
    assert run.client.peers.addresses["bob"].key == KEY


def test_an_address_nobody_asked_for_is_no_address():
    # (a security review's forged address, for a user never asked, was taken, and the user's
    # private messages went to the forger's port)
    run = logged_in()
    actions = delivered(run, ADDRESS, asked=False)
    assert printed(actions) == [] and of(actions, Log) and run.client.peers.addresses == {}


def test_a_key_in_clear_is_no_address_for_a_session_with_a_proof():
    # (... its key in clear: whoever wrote it could prove it; the server seals it always)
    run = logged_in()
    actions = delivered(run, {"type": "address", "user": "bob", "host": "10.0.0.2",
                              "port": 6001, "key": KEY})
    assert printed(actions) == [] and of(actions, Log) and run.client.peers.addresses == {}


@pytest.mark.parametrize("frame", [sealed_address(proof="another session's"),
                                   {**sealed_address(), "sealed": "zz"},
                                   {**sealed_address(), "sealed": 7}])
def test_a_key_that_does_not_open_with_our_proof_is_no_address(frame):
    run = logged_in()
    actions = delivered(run, frame)
    assert printed(actions) == [] and of(actions, Log) and run.client.peers.addresses == {}


def test_seal_and_unseal_are_inverse_and_the_pad_never_repeats_for_another_salt():
    key = "XWoOPYZwWsBM5rUucZ8PH_"
    one = protocol.seal(key, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "1")
    two = protocol.seal(key, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "2")
    assert one != two and key not in one and len(one) == 2 * len(key)
    assert protocol.unseal(one, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "1") == key
    assert protocol.unseal(one, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "2") != key
    long_key = "k" * 64                     # past one HMAC block: the pad goes on
    sealed = protocol.seal(long_key, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "3")
    assert protocol.unseal(sealed, "proof", protocol.ADDRESS_KEY_LABEL, "seas", "3") == long_key


@pytest.mark.parametrize("frame, lines", [
    ({"type": "address_refused", "user": "bob"}, ["bob refused to give you their address."]),
    ({"type": "address_lapsed", "user": "bob"},
     ["bob did not answer your request for their address."]),
    ({"type": "address_lapsed", "user": "bob", "left": True},        # (not "did not answer")
     ["bob logged out, or logged in again, before answering your request for their "
      "address."]),
    ({"type": "consent_lapsed", "user": "bob"},
     ["bob asked for your address, but the request lapsed before you answered."]),
    ({"type": "consent_lapsed", "user": "bob", "left": True},   # (not "lapsed": bob left)
     ["bob asked for your address, but logged out, or logged in again, before you answered."]),
])
def test_refused_and_lapsed_requests_are_shown(frame, lines):
    assert printed(delivered(logged_in(), frame)) == lines


@pytest.mark.parametrize("frame", [
    {"type": "consent_request"},
    {"type": "consent_request", "from": "x" * 65},
    {"type": "address", "user": "bob", "host": "10.0.0.2", "port": "6001", "key": KEY},
    {"type": "address", "user": "bob", "host": "10.0.0.2", "port": True, "key": KEY},
    {"type": "address", "user": "bob", "host": "10.0.0.2", "port": 6001, "key": ""},
    {"type": "address", "host": "10.0.0.2", "port": 6001, "key": KEY},
    {"type": "address_refused", "user": 7},
    {"type": "address_revoked", "user": "bob"},        # we hold no address for bob
])
def test_malformed_or_pointless_address_deliveries_are_logged_only(frame):
    run = logged_in()
    actions = delivered(run, frame)
    assert printed(actions) == [] and of(actions, Log)
    assert run.client.peers.addresses == {}


def test_revoked_address_is_forgotten_and_said():
    run = with_address(logged_in())
    actions = delivered(run, {"type": "address_revoked", "user": "bob"}, conn=71)
    assert printed(actions) == [
        "bob's address is no longer valid. Type getaddress bob to ask again."]
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_an_address_taken_back_by_a_no_is_said_so():
    # (a re-attack's window said the peer had logged out, who had said N)
    run = with_address(logged_in())
    actions = delivered(run, {"type": "address_revoked", "user": "bob", "taken_back": True},
                        conn=71)
    assert printed(actions) == ["bob took back their yes: private messages to them stop. "
                                "Type getaddress bob to ask again."]
    assert run.client.peers.addresses == {}
    # said too when the peer's listener, refusing our link first, made us forget it (a
    # window's test found the news silent)
    again = delivered(run, {"type": "address_revoked", "user": "bob", "taken_back": True},
                      conn=72)
    assert printed(again) == printed(actions)


def test_a_revoked_address_says_at_once_what_waited_for_a_link_not_yet_open():
    """(a trial's peer, stopped as its address was void, took the connection and never
    answered: 20 s later the message was said not delivered as "Connect failed")"""
    run = with_address(logged_in())
    run.type("private bob psst")
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))      # taken, not yet proven
    actions = delivered(run, {"type": "address_revoked", "user": "bob"}, conn=71)
    assert printed(actions) == [
        "bob's address is no longer valid. Type getaddress bob to ask again.",
        "Not delivered to bob: psst",
        "To leave it for bob through the server, type message bob <text>."]
    assert of(actions, EndLink) == [EndLink(1)]
    assert printed(run.do(LinkClosed(1, "eof"))) == []        # said once, not again


# -- sending privately --------------------------------------------------------------------------

def test_private_without_an_address_tells_the_user_to_ask_first():
    run = logged_in()
    actions = run.type("private bob hello")
    assert printed(actions) == ["You don't have bob's address. Type getaddress bob first."]
    assert not of(actions, OpenLink) and not requests(actions)


def test_private_opens_a_link_proves_who_we_are_and_sends_once_the_listener_proves_it_too():
    run = with_address(logged_in())
    actions = run.type("private bob hello  there")
    assert of(actions, OpenLink) == [OpenLink(1, "10.0.0.2", 6001)]
    assert Arm(LinkIdle("bob"), PEER_PROOF_S) in actions        # the listener's time to prove
    assert printed(actions) == [] and not requests(actions)        # never via the server
    actions = run.do(LinkIn(1, {"type": "challenge", "nonce": "n1"}))
    assert sent(actions) == [(1, {"type": "peer_hello", "from": "alice", "nonce": "na1",
                                  "mac": dialer_mac(KEY, "alice", "bob", "n1")})]
    assert sent(run.do(LinkIn(1, listener_ok()))) == [
        (1, {"type": "private", "from": "alice", "text": "hello  there"})]
    # the open link carries the next message at once
    assert sent(run.type("private bob again")) == [
        (1, {"type": "private", "from": "alice", "text": "again"})]
    # each acknowledgement marks the oldest of our messages taken, in order
    assert [run.do(LinkIn(1, OK)) for _ in range(2)] == [[ShowFate("private-1", Fate.SENT)],
                                                          [ShowFate("private-2", Fate.SENT)]]


@pytest.mark.parametrize("answer", [
    {"type": "ok"}, {"type": "ok", "mac": "00"},
    {"type": "ok", "mac": listener_mac(KEY, "bob", "alice", "another nonce")},
    {"type": "ok", "mac": dialer_mac(KEY, "alice", "bob", "na1")},      # our own proof, reflected
])
def test_a_listener_that_cannot_prove_the_key_gets_nothing(answer):
    """After a peer's client died, whoever took its port must not read what was meant for it."""
    run = with_address(logged_in())
    run.type("private bob my bank pin is 1234")
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))
    actions = run.do(LinkIn(1, answer))
    # closed at once, no bye (it waited 10 s for the close, and the user with it: a trial's)
    assert sent(actions) == [] and of(actions, Log)
    assert of(actions, EndLink) == [EndLink(1, at_once="its proof was wrong")]
    actions = run.do(LinkClosed(1, "eof"))
    assert printed(actions) == not_delivered("my bank pin is 1234") and requests(actions) == []
    # and the address is forgotten: that port is not tried again
    assert printed(run.type("private bob again")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_a_listener_that_never_proves_itself_is_given_up_and_its_messages_reported():
    run = with_address(logged_in())
    run.type("private bob p0")
    for n in range(1, 4):           # typing on does not put the listener's deadline back
        run.now = 2.0 * n
        run.type(f"private bob p{n}")
        assert run.do(Expired(LinkIdle("bob"))) == [Arm(LinkIdle("bob"), PEER_PROOF_S)]
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))      # challenged, never proven
    run.now = PEER_PROOF_S
    actions = run.do(Expired(LinkIdle("bob")))
    assert of(actions, EndLink) == [EndLink(1)] and sent(actions) == [] and of(actions, Log)
    # told at once, as not answered ("Connect failed" was wrong: the connect was taken), not
    # when the stopped peer's close comes, or not, after the bye (a trial's 12 s)
    assert printed(actions) == [
        "bob's client took the connection but did not answer: it may be stopped or busy.",
        *not_delivered("p0", "p1", "p2", "p3")[1:]]
    actions = run.do(LinkClosed(1, "no close after bye"))
    assert printed(actions) == [] and requests(actions) == []
    assert of(run.type("private bob again"), OpenLink) == [OpenLink(2, "10.0.0.2", 6001)]


def test_messages_typed_while_connecting_wait_for_the_challenge():
    run = with_address(logged_in())
    run.type("private bob one")
    # nothing goes out yet: the screen shows it on its way
    assert run.type("private bob two") == [ShowSending("private-2", "bob", "two", private=True)]
    texts = [f["text"] for _, f in sent(opened(run)) if f["type"] == "private"]
    assert texts == ["one", "two"]


def test_an_idle_link_is_ended_with_bye_after_50s_unused():
    run = with_address(logged_in())
    run.type("private bob one")
    opened(run)
    run.do(LinkIn(1, OK))
    run.now = 20.0
    run.type("private bob two")
    run.do(LinkIn(1, OK))
    run.now = PEER_IDLE_S
    assert run.do(Expired(LinkIdle("bob"))) == [Arm(LinkIdle("bob"), 20.0 + PEER_IDLE_S)]
    run.now = 20.0 + PEER_IDLE_S
    assert run.do(Expired(LinkIdle("bob"))) == [EndLink(1)]
    # the peer closes after our bye: nothing to report, and the next message opens a new link
    assert printed(run.do(LinkClosed(1, "eof"))) == []
    assert of(run.type("private bob three"), OpenLink) == [OpenLink(2, "10.0.0.2", 6001)]
    assert run.do(Expired(LinkIdle("nobody"))) == []


@pytest.mark.parametrize("reason", ["refused", "timed out", "reset", "unreachable"])
def test_an_unreachable_peer_is_reported_and_nothing_goes_through_the_server(reason):
    run = with_address(logged_in())
    run.type("private bob are you there?")
    actions = run.do(LinkClosed(1, reason))
    assert printed(actions) == not_delivered("are you there?")
    assert requests(actions) == []


def test_messages_unacknowledged_when_the_link_breaks_are_reported_unsure_not_resent():
    """(sent, they may have arrived: a trial's stopped peer showed one after "Not delivered",
    and "Connect failed" named a link that was up)"""
    run = with_address(logged_in())
    run.type("private bob one")
    opened(run)
    run.type("private bob two")
    run.do(LinkIn(1, OK))          # "one" arrived
    actions = run.do(LinkClosed(1, "reset"))
    # broken, not "stopped or busy" (a trial's killed peer read so)
    assert printed(actions) == [
        "The link to bob's client broke: what it did not acknowledge may not have reached "
        "it.", "Perhaps not delivered to bob: two",
        "To leave it for bob through the server, type message bob <text>."]
    assert requests(actions) == []
    assert of(actions, ShowFate) == [ShowFate("private-2", Fate.UNSURE,
                                              "Perhaps not delivered to bob: two",
                                              "bob's client did not acknowledge it")]


def test_a_peer_that_stops_answering_is_said_to_have():
    run = with_address(logged_in())
    run.type("private bob one")
    opened(run)
    run.type("private bob two")
    actions = run.do(LinkClosed(1, "nothing acknowledged in 10 s"))    # our time-out's close
    assert printed(actions)[0] == ("bob's client stopped answering (it may be stopped or "
                                   "busy): what it did not acknowledge may not have reached it.")


@pytest.mark.parametrize("scripted", [False, True])
def test_quitting_says_what_the_links_did_not_deliver(scripted):
    """(a trial's quit with a private message waiting for a stopped peer's handshake, and
    another's on an open link, unacknowledged: both went without a word, status 0)"""
    run = with_address(logged_in(scripted=scripted))
    run.type("private bob one")
    opened(run)
    run.type("private bob two")
    run.do(LinkIn(1, OK))          # "one" arrived
    run.do(Interrupted())
    actions = run.reply(OK, "logout")
    assert of(actions, ShowFate) == [ShowFate(
        "private-2", Fate.UNSURE, "Perhaps not delivered to bob (you quit before it was "
        "acknowledged): two", "you quit before it was acknowledged", True)]
    assert of(actions, Exit)[0].code == (1 if scripted else 0)
    # (a trial's summary called it "not sent", under the line that said perhaps not delivered)
    assert of(actions, Exit)[0].reason == "1 private message was perhaps not delivered" + (
        " (listed above)" if scripted else "")
    waiting = with_address(logged_in())
    waiting.type("private bob never")               # its link not yet open
    assert printed(waiting.do(Interrupted())) == []
    assert printed(waiting.reply(OK, "logout")) == [
        "Not delivered to bob (you quit before it went): never"]


def test_an_idle_link_closed_by_a_yes_taken_back_is_said_once_and_truly():
    """(a trial's peer took back its yes after every private was shown: the user read that
    bob "did not accept your private message", under the news that bob took it back)"""
    def idle_link():
        run = with_address(logged_in())
        run.type("private bob hi")
        opened(run)
        run.do(LinkIn(1, OK))           # "hi" acknowledged: nothing in flight
        return run
    news_first = idle_link()
    assert printed(delivered(news_first, {"type": "address_revoked", "user": "bob",
                                          "taken_back": True}, conn=71)) == [
        "bob took back their yes: private messages to them stop. "
        "Type getaddress bob to ask again."]
    assert printed(news_first.do(LinkIn(1, err("not_allowed")))) == []
    # its listener's refusal first (it comes straight from bob's client): the only news a
    # stopped client may get of it, so said, without a message it did not refuse
    refusal_first = idle_link()
    assert printed(refusal_first.do(LinkIn(1, err("not_allowed")))) == [
        "bob no longer takes your private messages. Type getaddress bob to ask again."]
    # ... and the news after it is not said again (a re-attack's user read both)
    assert printed(delivered(refusal_first, {"type": "address_revoked", "user": "bob",
                                             "taken_back": True}, conn=71)) == []


@pytest.mark.parametrize("ending", ["the input's end", "logout", "quit"])
def test_a_scripts_end_waits_for_its_private_messages_to_be_acknowledged(ending):
    """(a trial's script that ended just after a private message had it reported not
    delivered, perhaps not delivered, or refused by the peer once its logout had ended the
    consent, though the peer had shown it: four outcomes, by timing)"""
    run = with_address(logged_in(scripted=True))
    run.type("private bob hi")
    waits = run.do(InputEnded()) if ending == "the input's end" else run.type(ending)
    assert requests(waits) == []                   # no logout while "hi" is on its way
    # (said: a re-attack's Ctrl-D waited 10 s for a stopped peer without a word)
    assert printed(waits) == ["Waiting up to 10 s for 1 private message to be acknowledged."]
    opened(run)
    assert requests(run.do(LinkIn(1, OK))) == [{"type": "logout", "token": "t1"}]
    actions = run.reply(OK, "logout")
    assert not [line for line in printed(actions) if "deliver" in line]
    if ending != "logout":
        assert of(actions, Exit)[0].code == 0


def test_a_scripts_end_waits_for_a_peer_that_never_answers_only_the_links_time():
    run = with_address(logged_in(scripted=True))
    run.type("private bob hi")
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))     # taken, never proven
    assert requests(run.do(InputEnded())) == []
    run.now = PEER_PROOF_S
    actions = run.do(Expired(LinkIdle("bob")))
    assert "Not delivered to bob: hi" in printed(actions)
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    # said during the run, counted in the script's status (a trial's ended 0 under it)
    exit_ = of(run.reply(OK, "logout"), Exit)[0]
    assert (exit_.code, exit_.reason) == (1, "1 private message was not delivered (said above)")


def test_a_scripts_end_does_not_wait_for_a_link_already_ending():
    """(a re-attack's peer, stopped with a private unacknowledged, logged in elsewhere: the
    end waited 20 s, the link's 10 s and then its close's)"""
    run = with_address(logged_in(scripted=True))
    run.type("private bob rv1")
    opened(run)                                     # sent, never acknowledged
    run.do(InputEnded())
    actions = delivered(run, {"type": "address_revoked", "user": "bob"}, conn=71)
    assert [f["type"] for f in requests(actions)] == ["logout"]
    assert "Perhaps not delivered to bob (you quit before it was acknowledged): rv1" in (
        printed(run.reply(OK, "logout")))


def test_a_peer_whose_session_ended_is_said_to_have_not_to_refuse():
    """(a p2p trial's peer, its session ended by a server restart, was said to no longer take
    private messages, as if it had chosen to, before the restart itself was told)"""
    run = with_address(logged_in())
    run.type("private bob hi")
    opened(run)
    ended = {**err("not_allowed"), "session_ended": True}
    actions = run.do(LinkIn(1, ended))
    assert printed(actions)[0] == (
        "bob's session ended (a logout, or the server restarted), and your private talk with "
        "it. Type getaddress bob to ask again once they are back.")
    # and our own session's end says so to the peers linked to us
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    run.do(Incoming(7, server_hello(7)))
    actions = run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    sent_back = of(actions, SendTo)
    assert sent_back and sent_back[0].frame["session_ended"] is True


def test_a_peer_that_refuses_our_proof_is_reported_and_not_resent():
    run = with_address(logged_in())
    run.type("private bob hi")
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))
    actions = run.do(LinkIn(1, err("not_allowed")))
    # the message is given back, with where to leave it instead (it said only the first)
    assert printed(actions) == [
        "bob no longer takes your private messages. Type getaddress bob to ask again.",
        "Not delivered to bob: hi",
        "To leave it for bob through the server, type message bob <text>."]
    assert of(actions, ShowFate) == [ShowFate("private-1", Fate.REFUSED,
                                              "Not delivered to bob: hi",
                                              "bob no longer takes your private messages")]
    actions = run.do(LinkClosed(1, "eof"))
    assert printed(actions) == [] and requests(actions) == []
    assert printed(run.type("private bob again")) == [
        "You don't have bob's address. Type getaddress bob first."]


@pytest.mark.parametrize("frame", [
    {"type": "message", "from": "mallory", "text": "not a challenge"},
    {"type": "challenge"},
    {"type": "challenge", "nonce": 5},
    {"type": "ok"},                                  # nothing was waiting for an answer
])
def test_a_listener_that_breaks_the_link_protocol_is_left_and_the_message_reported(frame):
    run = with_address(logged_in())
    run.type("private bob hi")
    actions = run.do(LinkIn(1, frame))
    assert of(actions, EndLink) == [EndLink(1, at_once=f"unexpected {frame['type']!r}")]
    assert of(actions, Log)
    # a second odd frame while ending: no second bye, but the link is cut off at once (a
    # trial's peer streamed 11 MB after the bye, a log line each), its lines folded
    again = run.do(LinkIn(1, frame))
    assert of(again, EndLink) == [EndLink(1, at_once="talked on after bye")]
    assert [log.key for log in of(again, Log)] == [("a peer talked on after bye", "bob")]
    actions = run.do(LinkClosed(1, "eof"))
    assert printed(actions) == not_delivered("hi") and requests(actions) == []
    assert run.do(LinkIn(1, OK)) == [] and run.do(LinkClosed(1, "eof")) == []   # forgotten


def test_a_new_address_ends_the_link_to_the_old_one():
    run = with_address(logged_in())
    run.type("private bob hi")
    run.do(LinkIn(1, {"type": "challenge", "nonce": "n"}))
    actions = delivered(run, sealed_address(key="k2", port=6002), conn=72)
    assert of(actions, EndLink) == [EndLink(1)]
    assert printed(actions) == ["got address!", "bob 10.0.0.2 6002"]
    assert of(run.type("private bob new"), OpenLink) == [OpenLink(2, "10.0.0.2", 6002)]


def test_logout_ends_links_and_forgets_addresses_and_keys():
    run = with_address(logged_in())
    run.type("private bob hi")
    run.do(Accepted(8, "n8"))
    run.type("Y carol")
    run.reply({"type": "ok", "key": "kc"})
    run.do(Incoming(8, {"type": "peer_hello", "from": "carol", "nonce": "c8",
                        "mac": dialer_mac("kc", "carol", "alice", "n8")}))
    run.type("logout")
    actions = run.reply(OK)
    assert EndLink(1) in actions and CloseConn(8) in actions
    assert run.client.peers.addresses == {} and run.client.peers.granted == {}
    # a message the link still held when it broke is reported, as always
    actions = run.do(LinkClosed(1, "reset"))
    assert printed(actions) == not_delivered("hi") and requests(actions) == []


# -- the listening side: who may write to us ----------------------------------------------------

def granted(run, user="bob", key=KEY):
    """The user typed Y <user> and the server answered with the key."""
    run.type(f"Y {user}")
    run.reply({"type": "ok", "key": key})
    return run


def hello(nonce, sender="bob", key=KEY, receiver="alice", theirs="d1"):
    """A dialer's hello for our challenge `nonce`, challenging us back with `theirs`."""
    return {"type": "peer_hello", "from": sender, "nonce": theirs,
            "mac": dialer_mac(key, sender, receiver, nonce)}


def test_every_accepted_connection_is_challenged_with_its_nonce():
    run = logged_in()
    assert run.do(Accepted(5, "nonce-5")) == [
        SendTo(5, {"type": "challenge", "nonce": "nonce-5"})]


def test_a_proven_peer_is_answered_and_its_messages_are_shown_as_private():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    # the answer proves the key back, for the dialer's own challenge
    assert run.do(Incoming(5, hello("n5"))) == [
        SendTo(5, {"type": "ok", "mac": listener_mac(KEY, "alice", "bob", "d1")}),
        TagLines(5, KEY, "n5", "d1")]           # and every line after it is tagged
    actions = run.do(Incoming(5, {"type": "private", "from": "bob", "text": "psst  hi"}))
    assert actions == [Show("private", "psst  hi", "bob"), SendTo(5, OK, acknowledges=True)]
    assert run.do(Incoming(5, {"type": "bye"})) == [CloseConn(5)]


def test_a_peer_holds_two_links_at_most_its_oldest_giving_way_to_its_newest():
    """A peer given consent once held all 64 places of the listening port, and the server's
    delivery connection was refused (a trial's)."""
    run = granted(logged_in())
    for conn in (5, 6, 7):
        run.do(Accepted(conn, f"n{conn}"))
    run.do(Incoming(5, hello("n5")))
    assert CloseConn(5) not in run.do(Incoming(6, hello("n6")))
    actions = run.do(Incoming(7, hello("n7")))
    assert actions[-1] == CloseConn(5) and SendTo(7, {
        "type": "ok", "mac": listener_mac(KEY, "alice", "bob", "d1")}) in actions
    assert [run.client.peer_link(conn) for conn in (5, 6, 7)] == [False, True, True]
    assert run.do(Incoming(5, PRIVATE)) == []               # closed: it is heard no more


NOT_ALLOWED = ("not_allowed", "no valid consent: private messages are refused")


def refused_once(run, conn, *frames, answer=NOT_ALLOWED):
    """Feed frames; the first is refused (told once, logged, answered, closed), the rest ignored."""
    actions = run.do(Incoming(conn, frames[0]))
    assert len(printed(actions)) == 1 and of(actions, Log)
    code, message = answer
    assert SendTo(conn, {"type": "error", "code": code, "message": message}) in actions
    assert actions[-1] == CloseConn(conn)
    for frame in frames[1:]:
        assert run.do(Incoming(conn, frame)) == []
    return printed(actions)[0]


PRIVATE = {"type": "private", "from": "bob", "text": "trust me"}


def test_a_wrong_proof_is_refused():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    line = refused_once(run, 5, hello("n5", key="guessed"), PRIVATE)
    assert line == ("Refused a private connection from someone claiming to be bob: "
                    "the proof of identity was wrong.")


def test_a_replayed_hello_is_refused():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    run.do(Accepted(6, "n6"))
    line = refused_once(run, 6, hello("n5"), PRIVATE)   # copied from connection 5
    assert "proof of identity was wrong" in line


def test_a_hello_made_for_someone_else_is_refused():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    assert "proof of identity was wrong" in refused_once(run, 5, hello("n5", receiver="carol"))


def test_frames_before_the_proof_are_refused():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    line = refused_once(run, 5, PRIVATE, hello("n5"), PRIVATE)
    assert line == "Refused a private message from a peer that did not prove who it is."


def test_a_hello_without_consent_is_refused():
    run = logged_in()
    run.do(Accepted(5, "n5"))
    line = refused_once(run, 5, hello("n5"), PRIVATE)
    assert line == ("Refused a private connection from someone claiming to be bob: "
                    "you have not agreed to a private talk with bob.")


@pytest.mark.parametrize("frame", [
    {"type": "peer_hello", "from": "bob", "nonce": "d1"},
    {"type": "peer_hello", "mac": "00", "nonce": "d1"},
    {"type": "peer_hello", "from": "b" * 65, "mac": "00", "nonce": "d1"},
    {"type": "peer_hello", "from": "bob: send me your password", "mac": "00", "nonce": "d1"},
    {"type": "peer_hello", "from": "bob\u202e", "mac": "00", "nonce": "d1"},
    {"type": "peer_hello", "from": "bob", "mac": dialer_mac(KEY, "bob", "alice", "n5")},
    {"type": "peer_hello", "from": "bob", "mac": dialer_mac(KEY, "bob", "alice", "n5"),
     "nonce": 7},
])
def test_a_malformed_hello_is_refused(frame):
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    assert refused_once(run, 5, frame) == "Refused a private connection: its hello was malformed."


def test_refused_connections_are_said_a_few_a_minute_with_how_many_more():
    """Anyone can connect to the listening port: a flood of refusals is said 3 at once, then
    one every 10 s with the count of those left unsaid; each is still refused and logged."""
    run = logged_in()
    said = []
    for conn in range(10, 20):
        run.do(Accepted(conn, f"n{conn}"))
        actions = run.do(Incoming(conn, hello(f"n{conn}", sender=f"user{conn}")))
        assert actions[-1] == CloseConn(conn) and of(actions, Log)
        said += printed(actions)
    assert said == [f"Refused a private connection from someone claiming to be user{n}: "
                    f"you have not agreed to a private talk with user{n}." for n in (10, 11, 12)]
    run.now += 10
    run.do(Accepted(20, "n20"))
    assert printed(run.do(Incoming(20, PRIVATE))) == [
        "Refused a private message from a peer that did not prove who it is. "
        "(7 more connections refused before it.)"]


def test_a_hello_on_a_connection_we_did_not_challenge_is_refused():
    run = granted(logged_in())
    run.accepted.add(9)                     # (Run accepts every connection first, as the glue)
    assert "proof of identity was wrong" in refused_once(run, 9, hello("n9"))


@pytest.mark.parametrize("frame", [
    {"type": "private", "from": "carol", "text": "I am bob's friend"},
    {"type": "private", "from": "bob", "text": ""},
    {"type": "private", "from": "bob"},
    {"type": "peer_hello", "from": "bob", "mac": "again"},
    {"type": "message", "from": "bob", "text": "hi"},
])
def test_a_proven_peer_that_breaks_the_protocol_is_refused(frame):
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    # (answered bad_field: not_allowed told a trial's peer that its consent had ended)
    assert "broke the peer protocol" in refused_once(
        run, 5, frame, PRIVATE, answer=("bad_field", "not a private message with text from bob"))


def test_a_private_message_longer_than_any_client_sends_is_refused():
    """(a trial's proven peer sent 60,000 characters, shown as they came)"""
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    longest = {"type": "private", "from": "bob", "text": "x" * protocol.MAX_TEXT_CHARS}
    assert printed(run.do(Incoming(5, longest))) == ["bob (private): " + "x" * 4000]
    assert "longer than 4,000 characters" in refused_once(
        run, 5, {**longest, "text": "x" * (protocol.MAX_TEXT_CHARS + 1)},
        answer=("bad_field", "'text' is longer than 4000 characters"))
    # one past the line's limit, which the listener throws away unread, says so
    run.do(Accepted(6, "n6"))
    run.do(Incoming(6, hello("n6")))
    assert refused_once(run, 6, protocol.error("too_long"), answer=(
        "too_long", protocol.error("too_long")["message"])) == (
        "Refused a private message from bob: longer than a line may be.")


def test_blocking_a_peer_drops_its_key_and_closes_its_link():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    # the key ends as the block is typed, not when the server answers: the peer's messages
    # come to our listener (a trial's peer was let in after a block typed in an outage)
    typed = run.type("block bob")
    assert CloseConn(5) in typed and "bob" not in run.client.peers.granted
    actions = run.reply(OK)
    assert printed(actions) == ["User bob has been blocked."]
    assert run.do(Incoming(5, PRIVATE)) == []      # nothing more from that connection
    run.do(Accepted(6, "n6"))
    # (a trial's blocker read "you have not agreed", having agreed before the block)
    assert refused_once(run, 6, hello("n6"), PRIVATE) == (
        "Refused a private connection from someone claiming to be bob: you blocked bob, "
        "which ended your agreement.")
    run.type("unblock bob")
    run.reply(OK)
    run.do(Accepted(7, "n7"))
    assert "you have not agreed" in refused_once(run, 7, hello("n7"), PRIVATE)


def test_a_no_that_takes_back_a_yes_drops_the_key_and_closes_the_peers_link():
    # (a trial's user said N and went on getting the peer's private messages)
    run = granted(logged_in())
    granted(run, "carol", "kc")
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    typed = run.type("N bob")       # (the key ends as it is typed, as a block's does)
    actions = run.reply({"type": "ok", "revoked": True})
    assert printed(actions) == [
        "bob may no longer send you private messages (your yes is taken back)."]
    # a no that answered a new question too says both (it said only the yes taken back)
    run.type("N bob")
    assert printed(run.reply({"type": "ok", "revoked": True, "refused": True})) == [
        "You refused to give bob your address, and bob may no longer send you private "
        "messages (your yes is taken back)."]
    # told why, before the close: a message of its that crossed the N is not delivered, not
    # "perhaps" (a re-attack's peer was told our client had stopped answering)
    assert of(typed, SendTo) == [SendTo(5, protocol.error("not_allowed",
                                                          detail="the consent has ended"))]
    assert of(typed, CloseConn) == [CloseConn(5)]
    assert run.client.peers.granted == {"carol": "kc"}
    run.do(Accepted(6, "n6"))
    assert "you have not agreed" in refused_once(run, 6, hello("n6"), PRIVATE)


def test_a_plain_no_leaves_the_yes_given_to_others():
    run = granted(logged_in(), "carol", "kc")
    run.type("N bob")
    assert printed(run.reply(OK)) == ["You refused to give bob your address."]
    assert run.client.peers.granted == {"carol": "kc"}


def test_a_new_consent_does_not_renew_a_link_proven_with_the_old_key():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    granted(run, key="k-new")
    assert "no longer agree" in refused_once(run, 5, PRIVATE)


def test_consent_revoked_by_the_server_closes_the_peers_links():
    run = granted(logged_in())
    granted(run, "carol", "kc")
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    run.do(Accepted(6, "n6"))
    run.do(Incoming(6, hello("n6", "carol", "kc")))
    actions = delivered(run, {"type": "consent_revoked", "user": "bob"})
    assert of(actions, CloseConn) == [CloseConn(5)] and printed(actions) == []
    assert run.client.peers.granted == {"carol": "kc"}


def test_a_private_message_to_one_asked_who_has_not_answered_says_so():
    # (a trial's user, having just typed getaddress, was told to type getaddress first)
    run = logged_in()
    run.type("getaddress bob")
    run.reply(OK)
    assert printed(run.type("private bob hi")) == [
        "You asked bob for their address: private works once they agree."]
    delivered(run, {"type": "address_refused", "user": "bob"})
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_a_question_unanswered_past_the_consent_time_needs_asking_again():
    # (a re-attack's answer could not reach the asker, whose client said "asking" for good)
    run = logged_in()
    run.type("getaddress bob")
    run.reply(OK)
    run.now += 59.0
    assert printed(run.type("private bob hi")) == [
        "You asked bob for their address: private works once they agree."]
    run.now += 1.0
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_an_address_that_never_reached_its_asker_is_said_and_its_key_dropped():
    run = granted(logged_in())
    actions = delivered(run, {"type": "consent_revoked", "user": "bob", "unreached": True})
    assert printed(actions) == ["Your address could not be given to bob: their client did not "
                                "take it. bob may ask again."]
    assert run.client.peers.granted == {}


def test_a_question_that_never_reached_its_target_is_said():
    run = logged_in()
    actions = delivered(run, {"type": "address_lapsed", "user": "bob", "unreached": True})
    assert printed(actions) == ["bob could not be asked for their address: their client did "
                                "not take the question. Ask again later."]


def test_an_answer_lost_on_its_way_is_said_when_the_server_sends_word_of_it():
    """(a trial's client, stopped as bob's yes came, heard nothing, and was told to wait for
    the agreement that had come)"""
    run = logged_in()
    run.type("getaddress bob")
    run.reply(OK)
    actions = delivered(run, {"type": "address_lapsed", "user": "bob", "lost": True})
    assert printed(actions) == ["bob answered your request for their address, but the answer "
                                "could not reach this client. Type getaddress bob to ask again."]
    assert run.client.peers.asking == {}        # (no "you asked bob" to a private now)


def test_an_agreement_without_a_port_ends_with_the_session_that_gave_it():
    """(a trial's asker went on hearing "no listening port" after bob came back with one)"""
    run = logged_in()
    delivered(run, {"type": "address_unavailable", "user": "bob"})
    assert "bob agreed, but their client has no listening port" in printed(
        run.type("private bob hi"))[0]
    delivered(run, {"type": "address_revoked", "user": "bob"}, conn=71)
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]
    # ... or with a block, which ends it unsaid (a re-attack's went on saying "no port")
    delivered(run, {"type": "address_unavailable", "user": "bob"}, conn=72)
    delivered(run, {"type": "listed", "user": "bob", "listed": False}, conn=73)
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]
    delivered(run, {"type": "listed", "user": ["bob"], "listed": False}, conn=74)  # (ignored)


def test_closed_peer_connections_are_forgotten():
    run = granted(logged_in())
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    run.do(IncomingClosed(5))
    assert 5 not in run.client.doorkeeper.visitors


def test_the_servers_hello_still_works_on_a_challenged_connection():
    run = logged_in()
    run.do(Accepted(5, "n5"))
    assert printed(run.do(Incoming(5, server_hello(5)))) == []
    assert printed(run.do(Incoming(5, {"type": "message", "from": "bob", "text": "hi"}))) == [
        "bob: hi"]


def test_the_status_says_who_may_be_sent_private_messages():
    run = logged_in()
    actions = delivered(run, ADDRESS, sealed_address(user="abe"))
    assert of(actions, Status)[-1].private_to == ("abe", "bob")
    assert of(delivered(run, {"type": "address_revoked", "user": "bob"}, conn=71),
              Status)[-1].private_to == ("abe",)
    run.type("logout")
    assert of(run.reply(OK), Status)[-1].private_to == ()


def test_a_private_talks_notices_are_data_for_each_screen_to_word():
    run = logged_in()
    run.type("getaddress bob")
    assert of(run.reply(OK), Show) == [Show("asked", sender="bob")]
    assert of(delivered(run, ADDRESS), Show) == [Show("address", "10.0.0.2 6001", "bob")]
    assert of(run.type("private carol hi"), Show) == [Show("no_address", sender="carol")]
    # to ourselves: said so, not a getaddress to type (which refuses ourselves)
    assert of(run.type("private alice hi"), Show) == [
        Show("system", "You cannot send a private message to yourself.")]


def test_a_block_typed_in_an_outage_ends_the_key_though_the_server_never_answers():
    """(a trial's N and block, typed with the server down, were "not done", and the peer's
    links went on being let in on the old key)"""
    run = granted(logged_in())
    run.type("block bob")
    run.fail("refused")
    run.do(Accepted(6, "n6"))
    assert "bob" not in run.client.peers.granted
    refused_once(run, 6, hello("n6"), PRIVATE)


def test_a_servers_shutdown_ends_every_consent_here_too():
    """Its grants live in its memory: a restart ends them all (PROTOCOL.md), so a peer is
    not let in on a key the server no longer knows (a trial's was, 45 s into the outage)."""
    run = granted(logged_in(stay=True))
    run.do(Accepted(5, "n5"))
    run.do(Incoming(5, hello("n5")))
    shut = run.do(Pushed(1, {"type": "shutdown"}))
    assert CloseConn(5) in shut and run.client.peers.granted == {}
    run.do(Accepted(6, "n6"))
    refused_once(run, 6, hello("n6"), PRIVATE)


def test_consents_end_once_the_server_has_been_silent_past_a_sessions_time_out():
    run = granted(logged_in())
    run.now = 35.0                  # a heartbeat's reply late: nothing ends yet
    run.do(Accepted(5, "n5"))
    assert printed(run.do(Incoming(5, hello("n5")))) == []
    assert run.client.peers.granted == {"bob": KEY}
    run.now = 41.5                  # 31 s, and a request's 10, without a word from it
    run.do(Accepted(6, "n6"))
    actions = run.do(Incoming(6, hello("n6")))
    assert "The server has not answered for 42 s, past a session's time-out: the private " \
           "talks you agreed to end here (agree again once it is back)." in printed(actions)
    assert run.client.peers.granted == {} and CloseConn(6) in actions
