"""The client's outbox: messages wait, in order, until the server acknowledges them."""
from client_events import (Arm, Exit, Expired, Incoming, InputEnded, Interrupted, OutboxRetry,
                           SendTo)
from client_helpers import OK, WELCOME, err, hello, logged_in, printed, requests

RETRY = OutboxRetry()


def test_a_message_the_server_did_not_take_is_kept_listed_and_retried_with_backoff():
    run = logged_in()
    run.type("message bob one")
    first_try = run.open[run.last("message")]
    actions = run.fail("refused")
    assert printed(actions) == [
        "Cannot reach the server (refused).",
        "Waiting to be sent: message bob one",
        "Your message is kept and will be sent when the server answers (1 waiting; next try in 1 s)."]
    assert Arm(RETRY, 1.0) in actions
    # typing goes on; a second message waits behind the first, so the order holds
    assert printed(run.type("broadcast two")) == [
        "The server has not taken your earlier messages yet; this one waits behind them (2 waiting)."]
    assert requests(run.type("online")) != []            # other commands still go
    run.reply({"type": "online", "users": []}, "online")
    waits, said = [], []
    for _ in range(6):
        run.now += 100
        again = requests(run.do(Expired(RETRY)))
        assert again == [{**first_try}]                   # the same mid: never a second message
        failed = run.fail("timed out")
        waits.append([a.at for a in failed if isinstance(a, Arm)][0] - run.now)
        said += printed(failed)
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # the online reply had ended the outage: a new one is said once, the retries say nothing
    assert said == ["Cannot reach the server (timed out)."]
    run.do(Expired(RETRY))
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [
        "The server is back.", "bob is offline; your message will be delivered when they log in."]
    assert [f["type"] for f in run.open.values()] == ["broadcast"]   # the next one followed


def test_a_message_waiting_at_exit_is_reported_as_not_sent():
    run = logged_in()
    run.type("message bob unsent words")
    run.fail("refused")
    run.do(Interrupted())
    actions = run.reply(OK, "logout")
    assert "Not sent (the server never acknowledged it): message bob unsent words" in printed(actions)
    assert Exit(0) in actions


def test_end_of_input_waits_for_the_message_in_flight_before_logging_out():
    run = logged_in()
    run.type("message bob last words")
    run.do(InputEnded())
    assert [f["type"] for f in run.open.values()] == ["message"]
    run.reply({"type": "ok", "stored": False}, "message")
    assert [f["type"] for f in run.open.values()] == ["logout"]


def test_waiting_messages_go_out_after_the_same_user_logs_in_again():
    run = logged_in()
    run.type("message bob after the restart")
    mid = run.open[run.last("message")]["mid"]
    actions = run.reply(err("no_session", restarted=True), "message")
    assert printed(actions)[0] == ("The server has restarted, which ended your session. "
                                   "Please log in again.")
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    actions = run.reply({**WELCOME, "token": "t2"})
    assert requests(actions) == [{"type": "message", "token": "t2", "mid": mid, "to": "bob",
                                  "text": "after the restart"}]


def test_waiting_messages_are_not_sent_as_someone_else():
    run = logged_in()
    run.type("message bob private matter")
    run.reply(err("no_session"), "message")
    run.type("carol")
    run.reply(OK)
    run.type("pw")
    actions = run.reply({**WELCOME, "user": "carol", "token": "t2"})
    assert "Not sent (you logged in as someone else): message bob private matter" in printed(actions)
    assert requests(actions) == []


def test_a_numbered_delivery_is_shown_once_and_always_acknowledged():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    message = {"type": "message", "from": "bob", "text": "hi", "seq": 5}
    first = run.do(Incoming(7, message))
    assert printed(first) == ["bob: hi"] and SendTo(7, {"type": "ack", "seq": 5}) in first
    again = run.do(Incoming(7, message))                 # redelivered: the ack was lost
    assert printed(again) == [] and SendTo(7, {"type": "ack", "seq": 5}) in again
    older = run.do(Incoming(7, {**message, "seq": 3, "text": "old"}))
    assert printed(older) == []
    newer = run.do(Incoming(7, {**message, "seq": 9, "text": "new"}))
    assert printed(newer) == ["bob: new"]
