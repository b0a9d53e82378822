"""The client core when it stays connected: its login, deliveries pushed on its connection,
LinkUp and the resume, and what a client without a listening port says. No sockets."""
import pytest

from client_session import heartbeat_within, staying_heartbeat
from client_events import (Arm, CloseConn, Exit, Expired, HeartbeatDue, Incoming, Interrupted,
                           LinkUp, Log, Pushed, Replied, RequestFailed, Started)
from client_helpers import OK, WELCOME, Run, ack, err, hello, printed, requests
from terminal import ASK_USER

HEARTBEAT = HeartbeatDue()


def staying(port=None, **settings):
    run = Run(stay=True, **settings)
    run.client.settings.listen_port = port      # Run listens on 5000; these may not listen
    return run


def logged_in_staying(port=None, **settings):
    run = staying(port, **settings)
    run.login()
    return run


def logs(actions):
    return [a.text for a in actions if isinstance(a, Log)]


def test_a_staying_login_says_stay_and_names_a_port_only_if_it_listens():
    run = staying()
    run.do(LinkUp())                      # not logged in: nothing to resume
    run.type("alice")
    run.reply(OK)
    assert requests(run.type("pw")) == [
        {"type": "login", "user": "alice", "password": "pw", "client": "c", "stay": True}]
    run = staying(port=6001)
    run.type("alice")
    run.reply(OK)
    assert requests(run.type("pw")) == [
        {"type": "login", "user": "alice", "password": "pw", "client": "c", "stay": True,
         "port": 6001}]


def test_a_short_login_is_unchanged():
    run = Run()
    run.type("alice")
    run.reply(OK)
    assert requests(run.type("pw")) == [
        {"type": "login", "user": "alice", "password": "pw", "client": "c", "port": 5000}]


def test_a_staying_welcome_has_no_proof_so_every_delivery_hello_is_refused():
    """The server never delivers to a staying client's port (PROTOCOL.md): a hello there is
    not the server's, whatever key it proves."""
    run = staying(port=6001)
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    run.reply({key: value for key, value in WELCOME.items() if key != "proof"})
    for conn, key in ((7, "p1"), (8, "")):
        actions = run.do(Incoming(conn, hello(conn, key=key)))
        assert CloseConn(conn) in actions and "no hello with the right proof" in logs(actions)[0]


def test_a_staying_client_heartbeats_every_15_s_to_find_a_dead_connection_in_time():
    """(a connection that died without a word is found by a request's missing reply, 10 s on:
    at 30 s, a trial's NAT hole ended the session every time, past the server's 31 s)"""
    def welcomed_at(run, now):
        run.do(Started())
        run.type("alice")
        run.reply(OK)
        run.type("pw")
        run.now = now
        return run.reply(WELCOME)
    assert Arm(HEARTBEAT, 115.0) in welcomed_at(staying(), 100.0)
    assert Arm(HEARTBEAT, 130.0) in welcomed_at(Run(), 100.0)      # short connections: 30 s


@pytest.mark.parametrize("timeout, period", [
    (31, 15.0), (None, 15.0), (20, 5.0), (12, 0.5), (300, 15.0)])
def test_a_staying_heartbeat_finds_a_dead_connection_within_any_time_out(timeout, period):
    """(at 15 s, a server run with --timeout 20 ended the session before its dead connection
    was found, a reviewer's: 15 s, then 10 s for the reply)"""
    assert staying_heartbeat(heartbeat_within(30.0, timeout), timeout) == period


def test_pushed_messages_are_shown_once_and_acknowledged_on_their_connection():
    run = logged_in_staying()
    message = {"type": "message", "from": "bob", "text": "hi", "seq": 4}
    actions = run.do(Pushed(3, message))
    assert printed(actions) == ["bob: hi"] and ack(3, 4) in actions
    again = run.do(Pushed(8, message))                 # sent again after a resume
    assert printed(again) == [] and ack(8, 4) in again
    notice = run.do(Pushed(8, {"type": "presence", "user": "bob", "online": False}))
    assert printed(notice) == ["bob has logged out."]


def test_pushed_logged_out_ends_the_session():
    run = logged_in_staying()
    actions = run.do(Pushed(3, {"type": "logged_out", "reason": "elsewhere"}))
    assert printed(actions)[-1] == ASK_USER
    assert run.client.token is None


def test_a_staying_client_told_the_port_speaks_tls_leaves_saying_so():
    """(a trial's staying client tried a plain connection to a TLS port for ever)"""
    run = staying()
    actions = run.do(Pushed(3, err("tls_required", message="this port speaks TLS")))
    assert [(a.code, a.reason) for a in actions if isinstance(a, Exit)] == [
        (1, "this port speaks TLS")]


def test_a_push_while_logged_out_is_only_logged():
    run = staying()
    actions = run.do(Pushed(3, {"type": "presence", "user": "bob", "online": True}))
    assert printed(actions) == [] and logs(actions) == ["'presence' pushed while logged out ignored"]


def test_link_up_resumes_first_then_sends_what_waits_in_the_outbox():
    run = logged_in_staying()
    run.type("message bob one")
    run.fail("connection reset")                       # the link broke under it
    run.type("message bob two")                        # waits behind it
    run.now = 3.0
    actions = run.do(LinkUp())
    assert requests(actions) == [
        {"type": "resume", "token": "t1"},
        {"type": "message", "token": "t1", "mid": "c-1", "text": "one", "to": "bob"}]
    assert logs(run.reply(OK, "resume")) == ["the session resumed on a new connection"]
    run.reply({"type": "ok", "stored": False}, "message")
    assert [f["text"] for f in run.open.values()] == ["two"]


def test_a_resume_refused_for_no_session_asks_for_the_username():
    run = logged_in_staying()
    run.do(LinkUp())
    actions = run.reply(err("no_session", restarted=True), "resume")
    assert printed(actions) == [
        "The server has restarted, which ended your session. Please log in again.", ASK_USER]


def test_a_resume_refused_otherwise_is_tried_again_at_the_next_heartbeat():
    run = logged_in_staying(heartbeat_s=30.0)
    run.now = 5.0
    run.do(LinkUp())
    assert logs(run.reply(err("slow_down"), "resume")) == [
        "resume refused: server says slow_down"]
    run.now = 12.0
    early = run.do(Expired(HEARTBEAT))                 # not yet due: nothing sent
    assert requests(early) == [] and Arm(HEARTBEAT, 20.0) in early      # (15 s: staying)
    run.now = 20.0
    assert requests(run.do(Expired(HEARTBEAT))) == [{"type": "resume", "token": "t1"}]
    run.reply(OK, "resume")
    run.now = 35.0
    assert requests(run.do(Expired(HEARTBEAT))) == [{"type": "heartbeat", "token": "t1"}]


def test_a_resume_that_fails_waits_for_the_next_link_up():
    run = logged_in_staying()
    run.do(LinkUp())
    assert printed(run.fail("connection reset", "resume")) == [
        "Cannot reach the server (connection reset)."]
    assert requests(run.do(LinkUp())) == [{"type": "resume", "token": "t1"}]


def test_a_resume_reply_for_an_ended_session_is_ignored():
    run = logged_in_staying()
    run.do(LinkUp())
    resume_id = run.last("resume")
    run.type("logout")
    run.reply(OK, "logout")
    del run.open[resume_id]
    assert run.do(Replied(resume_id, err("no_session"))) == []


def test_no_link_up_work_while_exiting():
    run = logged_in_staying()
    run.do(Interrupted())                              # logging out before exit
    assert requests(run.do(LinkUp())) == []


def test_a_client_without_a_port_says_once_that_it_cannot_take_private_messages():
    run = logged_in_staying(port=None)
    first = printed(run.type("private bob hi"))
    assert first == [
        "This client has no listening port, so it cannot take private messages: others can "
        "answer you with message, not private.",
        "You don't have bob's address. Type getaddress bob first."]
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_a_client_with_a_port_says_nothing_of_the_kind():
    run = logged_in_staying(port=6001)
    assert printed(run.type("private bob hi")) == [
        "You don't have bob's address. Type getaddress bob first."]


def test_agreeing_without_a_port_says_the_asker_cannot_reach_us():
    run = logged_in_staying()
    run.type("Y bob")
    assert printed(run.reply({"type": "ok", "no_port": True}, "consent")) == [
        "You agreed, but this client has no listening port, so bob cannot reach it directly; "
        "bob can send you messages through the server."]


def test_a_staying_client_takes_its_key_in_clear_from_its_own_connection_if_it_asked():
    # (a staying session has no proof to seal with: its connection carries the key)
    run = staying()
    run.login({key: value for key, value in WELCOME.items() if key != "proof"})  # as staying
    address = {"type": "address", "user": "bob", "host": "10.0.0.2", "port": 6001, "key": "k"}
    assert printed(run.do(Pushed(1, address))) == []        # not asked: nothing taken
    run.type("getaddress bob")
    run.reply(OK, "getaddress")
    assert printed(run.do(Pushed(1, address))) == ["got address!", "bob 10.0.0.2 6001"]
    assert run.client.peers.addresses["bob"].key == "k"


def test_an_asker_told_the_target_has_no_port_is_told_to_use_message():
    run = logged_in_staying()
    actions = run.do(Pushed(1, {"type": "address_unavailable", "user": "bob"}))
    assert printed(actions) == ["bob agreed, but their client has no listening port, so it "
                                "cannot take private messages. Use message bob <text> instead."]
    # and a private to them says so again, not "type getaddress first" (which gets the same)
    assert printed(run.type("private bob hi"))[-1:] == printed(actions)


def test_a_failed_request_on_the_link_is_an_ordinary_failure():
    run = logged_in_staying()
    run.type("online")
    assert printed(run.do(RequestFailed(run.last("online"), "not connected"))) == [
        "Cannot reach the server (not connected).",
        "online was not done: type it again once the server is back."]
