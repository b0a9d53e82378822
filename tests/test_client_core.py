"""The client core, driven by events with a hand-moved `now`: no sockets, no sleeps."""
import io
import os
import signal
import socket
import subprocess
import sys

import pytest

import protocol
from client import parse_args
from client_events import (Arm, Cancel, CloseConn, CommandRetry, DrainDue, Exit, ExitDue,
                           Expired, HeartbeatDue, HungUp, Incoming, IncomingClosed, InputEnded,
                           Interrupted, LineIn, LinkUp, Log, LoginAbandoned, Probe, ProbeDue,
                           Replied, RequestFailed, SendRequest, SendTo, Show, Stage, Started,
                           Status)
from client_leaving import MAX_WAITING
from client_glue import REQUEST_TIMEOUT_S, URGENT_CONNECT_S
from client_helpers import (OK, WELCOME, FakeServer, Run, StandIn, ack, err, glue_with, hello,
                            logged_in, of, printed, proof_back, proven, requests,
                            run_with_input)
from reactor import READ_CHUNK_BYTES, Handler, Reactor
from timers import RealClock
from reactor_helpers import WATCHDOG_S, hung_listener, pump
from terminal import ASK_PASSWORD, ASK_USER, Terminal, TerminalScreen, sent_words


def secret(actions):
    """Whether a terminal hides typing after these actions (None: they do not say)."""
    states = [a.stage is Stage.PASSWORD for a in actions if isinstance(a, Status)]
    return states[-1] if states else None


# -- logging in ---------------------------------------------------------------------------------

def test_started_asks_for_a_username():
    assert printed(Run().do(Started())) == [ASK_USER]


def test_username_is_stripped_and_checked():
    run = Run()
    run.do(Started())
    assert requests(run.type("  alice  ")) == [{"type": "check_user", "user": "alice"}]


def test_empty_username_asks_again_without_a_request():
    run = Run()
    run.do(Started())
    actions = run.type("   ")
    assert printed(actions) == [ASK_USER] and requests(actions) == []


def test_a_name_longer_than_any_account_s_is_a_wrong_username_without_a_request():
    """Sent, one past the frame limit came back as "frame longer than 65536 bytes"."""
    run = Run()
    run.do(Started())
    actions = run.type("a" * 100_000)
    assert printed(actions) == ["Wrong username.", ASK_USER] and requests(actions) == []
    assert requests(run.type("a" * 64)) == [{"type": "check_user", "user": "a" * 64}]


def test_known_username_asks_for_a_hidden_password():
    run = Run()
    run.do(Started())
    run.type("alice")
    actions = run.reply(OK)
    assert printed(actions) == [ASK_PASSWORD]
    assert secret(actions) is True


def test_unknown_username_says_so_and_asks_again():
    run = Run()
    run.do(Started())
    run.type("colu")
    assert printed(run.reply(err("unknown_user"))) == ["Wrong username.", ASK_USER]


def test_a_name_no_account_can_have_is_a_wrong_username_and_other_errors_show_their_message():
    run = Run()
    run.do(Started())
    run.type("message columbia hi")       # a command typed at the username prompt
    assert printed(run.reply(err("bad_field"))) == ["Wrong username.", ASK_USER]
    run.type("colu")
    assert printed(run.reply(err("unavailable"))) == ["server says unavailable", ASK_USER]


def test_password_is_stripped_and_sent_with_the_listening_port():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    assert requests(run.type(" 116bway ")) == [
        {"type": "login", "user": "alice", "password": "116bway", "client": "c", "port": 5000}]


def test_empty_password_asks_again():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    actions = run.type("  ")
    assert printed(actions) == [ASK_PASSWORD] and requests(actions) == []


def test_welcome_logs_in_shows_echo_again_and_arms_the_heartbeat():
    run = Run()
    run.now = 5.0
    actions = run.login()
    assert printed(actions) == ["You have successfully logged in."]
    assert secret(actions) is False
    assert Arm(HeartbeatDue(), 35.0) in actions
    assert run.client.token == "t1" and run.client.proof == "p1"


@pytest.mark.parametrize("timeout, asked, period", [
    (31, 30.0, 30.0),           # the original's figures
    (5, 30.0, 4.0),             # a server with --timeout 5: a second under it (a trial's lost)
    (1.5, 30.0, 0.75),          # under 2 s: half of it
    (0.05, 30.0, 0.5),          # never under 0.5 s: each heartbeat counts in the user's rate
    (0.05, 0.5, 0.5),
    (31, 10.0, 10.0),           # asked for less: as asked
    (0, 30.0, 30.0), (-3, 30.0, 30.0), ("31", 30.0, 30.0), (True, 30.0, 30.0),
    (float("nan"), 30.0, 30.0), (1e300, 30.0, 30.0),    # no time-out to heed
])
def test_the_heartbeat_keeps_within_the_time_out_the_welcome_says(timeout, asked, period):
    run = Run(heartbeat_s=asked)
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    actions = run.reply({**WELCOME, "timeout": timeout})
    assert Arm(HeartbeatDue(), period) in actions
    run.now = period
    assert [f["type"] for f in requests(run.do(Expired(HeartbeatDue())))] == ["heartbeat"]


def test_wrong_password_asks_again_and_keeps_the_secret_prompt():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("11")
    actions = run.reply(err("wrong_password", attempts_left=2))
    assert printed(actions) == ["Wrong password. Please try again.", ASK_PASSWORD]
    assert secret(actions) in (None, True)
    assert requests(run.type("12"))[0]["password"] == "12"


def test_a_password_too_long_for_any_is_said_so_and_not_sent():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    actions = run.type("p" * 4001)
    assert printed(actions) == ["No password is longer than 4,000 characters. Please try again.",
                                ASK_PASSWORD]
    assert requests(actions) == []


def test_a_login_abandoned_at_the_password_asks_for_a_username_again():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("11")
    run.reply(err("wrong_password", attempts_left=2))
    actions = run.do(LoginAbandoned())
    assert printed(actions) == [ASK_USER]
    assert of(actions, Status) == [Status(Stage.USERNAME, None, 0, None, False)]
    run.type("bob")
    assert requests(run.reply(OK)) == [] and run.client.user == "bob"
    assert requests(run.type("pw"))[0] == {"type": "login", "user": "bob", "password": "pw",
                                          "client": "c", "port": 5000}


def test_a_login_cannot_be_abandoned_while_its_answer_is_awaited_or_once_logged_in():
    run = Run()
    run.do(Started())
    run.type("alice")
    assert of(run.do(LoginAbandoned()), Log) and run.client.stage is Stage.USERNAME
    run.reply(OK)
    run.type("pw")
    assert of(run.do(LoginAbandoned()), Log)     # the login is on its way: its answer decides
    run.reply(WELCOME)
    assert of(run.do(LoginAbandoned()), Log) and run.client.stage is Stage.LOGGED_IN


def at_password(run):
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("11")


def at_password_probing(run):
    """at_password, for a client that first looks for the server (check_server)."""
    [probe] = [a for a in run.do(Started()) if isinstance(a, Probe)]
    run.do(Replied(probe.request_id, {}))
    run.type("alice")
    run.reply(OK)
    run.type("11")


def test_too_many_attempts_uses_the_frames_seconds_and_asks_for_a_username():
    run = Run()
    at_password(run)
    actions = run.reply(err("too_many_attempts", seconds=30.0))
    assert printed(actions) == [
        "You have entered wrong password three times. You will be blocked for 30 seconds.",
        ASK_USER]
    assert secret(actions) is False
    assert requests(run.type("bob")) == [{"type": "check_user", "user": "bob"}]


def test_too_many_attempts_with_other_numbers():
    run = Run()
    at_password(run)
    actions = run.reply(err("too_many_attempts", seconds=2.5, attempts=5))
    assert printed(actions)[0] == (
        "You have entered wrong password five times. You will be blocked for 2.5 seconds.")


def test_too_many_attempts_without_seconds_falls_back_to_30():
    run = Run()
    at_password(run)
    actions = run.reply(err("too_many_attempts", attempts=12))
    assert printed(actions)[0] == (
        "You have entered wrong password 12 times. You will be blocked for 30 seconds.")


def test_locked_name_says_so_and_asks_for_the_password_again_as_the_original_does():
    run = Run()
    at_password(run)
    actions = run.reply(err("locked", seconds=12))
    assert printed(actions) == ["You are still blocked, please try again later (in 12 s)",
                                ASK_PASSWORD]
    assert secret(actions) is True
    run.type("116bway")                     # typed once the time is up: the same name's login
    assert run.open[run.last()] == {"type": "login", "user": "alice", "password": "116bway",
                                    "client": "c", "port": 5000}


def test_a_locked_reply_without_a_time_keeps_the_originals_words():
    run = Run()
    at_password(run)
    assert printed(run.reply(err("locked")))[0] == "You are still blocked, please try again later"


def test_login_unknown_user_goes_back_to_username():
    run = Run()
    at_password(run)
    assert printed(run.reply(err("unknown_user"))) == ["Wrong username.", ASK_USER]


def test_other_login_error_shows_its_message_and_asks_for_the_password():
    run = Run()
    at_password(run)
    assert printed(run.reply(err("bad_field"))) == ["server says bad_field", ASK_PASSWORD]


def test_error_without_message_still_says_something():
    run = Run()
    at_password(run)
    lines = printed(run.reply({"type": "error", "code": "weird"}))
    assert "weird" in lines[0]


# -- commands -----------------------------------------------------------------------------------

def test_message_request_carries_the_token():
    run = logged_in()
    assert requests(run.type("message bob hi  there ")) == [
        {"type": "message", "token": "t1", "mid": "c-1", "to": "bob", "text": "hi  there "}]


@pytest.mark.parametrize("command, reply, lines", [
    ("message bob hi", {"type": "ok", "stored": False}, []),
    ("message bob hi", {"type": "ok", "stored": True},
     ["bob is offline; your message will be delivered when they log in."]),
    ("message bob hi", err("blocked"),
     ["Your message could not be delivered as the recipient has blocked you."]),
    ("message bob hi", err("unknown_user"), ["User bob does not exist."]),
    # (refused as typed now; the server's word, should it come, is worded the same)
    ("message bob hi", err("self"), ["You cannot send a message to yourself."]),
    ("message bob hi", err("too_long"),        # (the server dropped it unread)
     ["The server could not take your message just now; it was not sent. Send it again."]),
    ("broadcast hi", {"type": "ok", "skipped": 0}, []),
    ("broadcast hi", {"type": "ok", "skipped": 2}, ["2 users who block you did not get it."]),
    ("broadcast hi", {"type": "ok", "skipped": 1, "full": 3},
     ["1 user who blocks you did not get it.", "Your message could not be delivered to 3 "
      "users online, who have too many messages waiting."]),
    ("broadcast hi", {"type": "ok", "full": 1},
     ["Your message could not be delivered to 1 user online, who has too many messages "
      "waiting."]),
    ("online", {"type": "online", "users": ["bob", "carol"]}, ["bob", "carol"]),
    ("online", {"type": "online", "users": []}, ["No other users are online."]),
    ("block bob", OK, ["User bob has been blocked."]),
    ("block bob", err("unknown_user"), ["User bob does not exist."]),
    ("block bob", err("self"), ["You cannot block yourself."]),   # (as typed now: client's)
    ("block bob", err("already_blocked"), ["User bob is already blocked."]),
    ("unblock bob", OK, ["User bob has been unblocked."]),
    ("unblock bob", err("unknown_user"), ["User bob does not exist."]),
    ("unblock bob", err("self"), ["You cannot unblock yourself."]),
    ("unblock bob", err("not_blocked"), ["User bob is not blocked."]),
    ("broadcast hi", err("bad_field"), ["server says bad_field"]),
])
def test_command_replies_are_shown(command, reply, lines):
    run = logged_in()
    run.type(command)
    assert printed(run.reply(reply)) == lines


def test_block_and_unblock_send_the_user():
    run = logged_in()
    assert requests(run.type("block bob")) == [{"type": "block", "token": "t1", "user": "bob"}]
    run.reply(OK)
    assert requests(run.type("unblock bob")) == [{"type": "unblock", "token": "t1", "user": "bob"}]


def test_unexpected_reply_is_logged_not_shown():
    run = logged_in()
    run.type("online")
    actions = run.reply({"type": "ok"})
    assert printed(actions) == [] and of(actions, Log)


def test_usage_and_help_are_local():
    run = logged_in()
    actions = run.type("message bob")
    assert printed(actions) == ["Usage: message <user> <text>"] and requests(actions) == []
    actions = run.type("help")
    assert "message <user> <text>" in "\n".join(printed(actions)) and requests(actions) == []
    assert run.type("") == []


def test_logout_logs_out_and_asks_for_a_username():
    run = logged_in()
    actions = run.type("logout")
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert Cancel(HeartbeatDue()) in actions
    assert printed(run.reply(OK)) == ["You have logged out.", ASK_USER]
    assert requests(run.type("bob")) == [{"type": "check_user", "user": "bob"}]


def test_a_staying_link_is_needed_from_the_login_to_the_logout_only():
    run = Run(stay=True)
    assert not run.client.needs_link()          # at the login prompt it may close unused
    run.login()
    assert run.client.needs_link()              # deliveries come on it
    run.type("logout")
    run.reply(OK)
    assert not run.client.needs_link()


def test_logout_that_cannot_reach_the_server_still_logs_out_locally():
    run = logged_in()
    run.type("logout")
    assert printed(run.fail("refused")) == [
        "Cannot reach the server (refused).", "You have logged out.", ASK_USER]


def test_a_heartbeat_late_past_the_time_out_that_meets_no_session_says_it_timed_out():
    """A client stopped 35 s said only "Your session has ended" (a trial's)."""
    run = logged_in()
    run.now += 36.0                                   # stopped, then continued
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply(err("no_session"), "heartbeat")) == [
        "Your session timed out: this client sent nothing for 36 s (it was stopped, or the "
        "computer slept), and the server ended it. Please log in again.", ASK_USER]


def test_a_late_heartbeat_told_its_session_went_to_another_login_says_so():
    """(a client stopped when another login took its session missed the notice, and said its
    session had timed out)"""
    run = logged_in()
    run.now += 36.0
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply(err("no_session", reason="elsewhere"), "heartbeat")) == [
        "You have been logged out because your account logged in elsewhere.", ASK_USER]


def test_a_no_session_that_says_the_session_timed_out_is_told_so():
    """(after an outage the client said only that its session had ended)"""
    run = logged_in()
    run.type("online")
    assert printed(run.reply(err("no_session", reason="timed_out"))) == [
        "online was not done: the session had ended.",
        "Your session timed out: the server heard nothing from this client, and ended it. "
        "Please log in again.", ASK_USER]


def test_a_heartbeat_on_time_that_meets_no_session_says_only_that_it_ended():
    run = logged_in()
    run.now += 30.0
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply(err("no_session"), "heartbeat")) == [
        "Your session has ended. Please log in again.", ASK_USER]


def test_no_session_on_any_reply_asks_to_log_in_again():
    run = logged_in()
    run.type("online")
    actions = run.reply(err("no_session"))
    assert printed(actions) == ["online was not done: the session had ended.",
                                "Your session has ended. Please log in again.", ASK_USER]
    assert Cancel(HeartbeatDue()) in actions
    assert requests(run.type("alice")) == [{"type": "check_user", "user": "alice"}]


def test_lines_wait_for_the_reply_before_them_and_run_in_order():
    run = Run()
    run.do(Started())
    assert requests(run.type("alice")) != []
    assert of(run.type("pw"), Status)[0].waiting == 2      # queued behind check_user
    assert of(run.type("message bob hi"), Status)[0].waiting == 3
    assert requests(run.reply(OK))[0]["password"] == "pw"
    actions = run.reply(WELCOME)
    assert requests(actions) == [{"type": "message", "token": "t1", "mid": "c-1", "to": "bob",
                                  "text": "hi"}]


def test_a_failed_command_says_so_and_the_next_line_runs():
    run = logged_in()
    run.type("online")
    run.type("block bob")
    actions = run.fail("timed out")
    assert printed(actions) == ["Cannot reach the server (timed out).",
                                "online may not have been done: type it again once the server "
                                "is back."]
    assert requests(actions) == [{"type": "block", "token": "t1", "user": "bob"}]
    assert printed(run.fail("refused")) == [          # the outage is said once, not again
        "block bob was not done: type it again once the server is back."]


def test_a_command_the_server_asks_to_slow_down_goes_again_with_what_follows_behind_it():
    """(a trial's blocks typed behind 150 `online` were answered "too many requests; try
    again in 1 s", and never done; a message is kept and sent again)"""
    run = logged_in()
    run.type("block bob")
    run.type("online")
    block = run.last("block")
    slowed = run.reply({"type": "error", "code": "slow_down", "seconds": 2,
                        "message": "too many requests"}, "block")
    assert printed(slowed) == ["The server asks us to slow down; block bob goes again in 2 s."]
    assert Arm(CommandRetry(), run.now + 2) in slowed and requests(slowed) == []
    again = run.do(Expired(CommandRetry()))
    assert requests(again) == [{"type": "block", "token": "t1", "user": "bob"}]
    assert run.last("block") != block
    done = run.reply(OK, "block")
    assert printed(done) == ["User bob has been blocked."]
    assert requests(done) == [{"type": "online", "token": "t1"}]      # then what followed


def test_a_getaddress_sent_again_after_a_wait_names_its_user_when_it_is_answered():
    # (a trial's bare "request sent" came after another getaddress had been typed)
    run = logged_in()
    run.type("getaddress bob")
    run.reply({"type": "error", "code": "slow_down", "seconds": 2, "message": "x"},
              "getaddress")
    run.type("getaddress carol")
    run.do(Expired(CommandRetry()))
    assert printed(run.reply(OK, "getaddress")) == ["getaddress bob: request sent"]
    assert printed(run.reply(OK, "getaddress")) == ["request sent"]     # carol's, as typed


def test_a_slowed_command_whose_session_ends_meanwhile_is_said_not_done():
    run = logged_in()
    run.type("block bob")
    run.reply({"type": "error", "code": "slow_down", "seconds": 1, "message": "x"}, "block")
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    actions = run.do(Expired(CommandRetry()))
    assert printed(actions) == ["block bob was not done: the session had ended."]
    assert requests(actions) == []


def test_failed_check_user_asks_again():
    run = Run()
    run.do(Started())
    run.type("alice")
    assert printed(run.fail()) == ["Cannot reach the server (refused).", ASK_USER]


def test_a_name_that_cannot_reach_the_server_waits_for_it_with_what_is_typed_after_it():
    """After a logout with the server down, the name was asked for again, and the password
    typed next was shown, and taken for a name (a trial's)."""
    run = Run(check_server=True)
    [probe] = [a for a in run.do(Started()) if isinstance(a, Probe)]
    run.do(Replied(probe.request_id, {}))
    run.type("alice")
    check = run.open[run.last("check_user")]
    assert printed(run.fail()) == ["Cannot reach the server (refused).",
                                   "Your user name waits for the server, and is checked as soon "
                                   "as it answers."]
    run.type("pw")                                      # the password, typed ahead: it waits
    assert not run.open
    run.now += 1.0
    [probe] = [a for a in run.do(Expired(ProbeDue())) if isinstance(a, Probe)]
    actions = run.do(Replied(probe.request_id, OK))     # the server is back
    assert requests(actions) == [check]
    assert [f["type"] for f in requests(run.reply(OK, "check_user"))] == ["login"]


@pytest.mark.parametrize("refused, prompt", [("unknown_user", ASK_USER),
                                             ("wrong_password", ASK_PASSWORD)])
def test_what_was_typed_ahead_of_a_refused_name_or_password_is_not_used(refused, prompt):
    """A trial's mistyped name, answered once the server was back: the password typed after
    it went to the server as the next name, and showed; a message typed after a wrong
    password went as the next password."""
    run = Run()
    run.do(Started())
    run.type("colombia")
    if refused == "wrong_password":
        run.reply(OK)
        run.type("wrong")
    run.type("116bway")                          # typed ahead, for the prompt to come
    run.type("message seas typed ahead")
    actions = run.reply(err(refused))
    assert printed(actions)[-2:] == ["What you typed after it (2 lines) was not used.", prompt]
    assert requests(actions) == [] and not run.client.lines


def test_a_login_that_cannot_reach_the_server_waits_for_it_and_goes_when_it_answers():
    """The password typed during an outage was dropped and asked for again (a trial's)."""
    run = Run(check_server=True)
    at_password_probing(run)
    login = run.open[run.last("login")]
    assert printed(run.fail()) == ["Cannot reach the server (refused).",
                                   "Your login waits for the server, and goes as soon as it "
                                   "answers."]
    run.type("message bob typed meanwhile")     # waits behind the login
    assert not run.open
    run.now += 1.0
    [probe] = [a for a in run.do(Expired(ProbeDue())) if isinstance(a, Probe)]
    actions = run.do(Replied(probe.request_id, OK))     # the server is back
    assert printed(actions) == ["The server is back."]
    assert requests(actions) == [login]
    run.reply(WELCOME, "login")
    assert [f["type"] for f in run.open.values()] == ["message"]


def test_the_input_ended_while_a_login_waits_for_the_server_leaves_at_once():
    """(a trial's Ctrl-D waited without a word for a minute, then logged in and out when the
    server came back)"""
    run = Run(check_server=True)
    at_password_probing(run)
    run.fail()
    actions = run.do(InputEnded())
    assert any(isinstance(a, Exit) for a in actions)
    assert not run.open                                  # no login goes later
    # ended while the login is on its way to a server that takes connections and never
    # answers: it leaves once that try fails (it waited for ever, a re-attack's)
    late = Run(check_server=True)
    at_password_probing(late)
    assert not any(isinstance(a, Exit) for a in late.do(InputEnded()))
    assert any(isinstance(a, Exit) for a in late.fail("no reply", "login"))
    scripted = Run(check_server=True, scripted=True)     # a script's end waits for its lines
    at_password_probing(scripted)
    scripted.fail()
    assert not any(isinstance(a, Exit) for a in scripted.do(InputEnded()))


def test_a_failed_login_that_nothing_would_retry_asks_for_the_password_again():
    """Without probes or a staying link, made again by itself, it would wait for nothing."""
    run = Run()
    at_password(run)
    assert printed(run.fail()) == ["Cannot reach the server (refused).", ASK_PASSWORD]
    assert run.client.login_again is None


def test_a_staying_clients_name_and_login_wait_for_its_link_made_again():
    """A trial's staying client asked for the name again when its check could not reach the
    server: the password typed next showed, and went as a name; and a message typed after
    the password went as the next password."""
    run = Run(check_server=True, stay=True)
    run.do(Started())
    run.do(LinkUp())                            # the link found the server ...
    run.answer_probe()                          # ... and its port our protocol: the prompt
    run.type("alice")
    check = run.open[run.last("check_user")]
    assert printed(run.fail())[-1] == ("Your user name waits for the server, and is checked "
                                       "as soon as it answers.")
    run.type("11")                              # the password, typed ahead: it waits
    up = run.do(LinkUp())                       # the link, made again
    assert requests(up) == [check] and printed(up) == []     # "back" when it answers
    assert printed(run.reply(OK, "check_user"))[0] == "The server is back."
    login = run.open[run.last("login")]
    run.type("message bob typed after the password")
    assert printed(run.fail())[-1] == ("Your login waits for the server, and goes as soon as "
                                       "it answers.")
    assert requests(run.do(LinkUp())) == [login]


def test_quit_at_the_name_prompt_in_an_outage_leaves_instead_of_waiting_as_a_name():
    """(a trial's "quit" waited as a name for the server, and took what was typed next)"""
    run = Run(check_server=True, stay=True)
    run.do(Started())
    run.do(LinkUp())
    run.answer_probe()
    run.type("quit")
    assert Exit(0) in run.fail()
    assert run.client.login_again is None


def test_another_word_for_leaving_in_an_outage_is_asked_again_not_held_as_a_name():
    run = Run(check_server=True, stay=True)
    run.do(Started())
    run.do(LinkUp())
    run.answer_probe()
    run.type("bye")
    assert printed(run.fail())[-2:] == [
        "bye was not checked: the server cannot be reached. Type an account's name; Ctrl-D "
        "or Ctrl-C leaves.", ASK_USER]
    assert run.client.login_again is None


def test_a_login_waiting_for_the_server_is_given_up_for_another_name():
    run = Run(check_server=True)
    at_password_probing(run)
    run.fail()
    actions = run.do(LoginAbandoned())
    assert printed(actions) == [ASK_USER] and run.client.login_again is None


def test_reply_to_an_unknown_request_is_logged():
    run = logged_in()
    actions = run.do(Replied(999, OK))
    assert printed(actions) == [] and of(actions, Log)
    assert of(run.do(RequestFailed(998, "eof")), Log)


# -- heartbeat ----------------------------------------------------------------------------------

def test_heartbeat_every_period_while_logged_in():
    run = logged_in(heartbeat_s=30.0)
    run.now = 30.0
    actions = run.do(Expired(HeartbeatDue()))
    assert requests(actions) == [{"type": "heartbeat", "token": "t1"}]
    assert Arm(HeartbeatDue(), 60.0) in actions
    assert printed(run.reply(OK)) == []


def test_heartbeat_does_not_block_typed_lines():
    run = logged_in()
    run.now = 30.0
    run.do(Expired(HeartbeatDue()))
    assert requests(run.type("online")) == [{"type": "online", "token": "t1"}]


def test_a_recent_request_postpones_the_heartbeat():
    # any request with the token is a sign of life, so no heartbeat is needed right after one
    run = logged_in()
    run.now = 20.0
    run.type("online")
    run.reply({"type": "online", "users": []})
    run.now = 30.0
    actions = run.do(Expired(HeartbeatDue()))
    assert requests(actions) == [] and Arm(HeartbeatDue(), 50.0) in actions


def test_heartbeat_outage_is_reported_once_until_the_server_answers():
    run = logged_in()
    reports = []
    for beat in range(1, 4):
        run.now = 30.0 * beat
        run.do(Expired(HeartbeatDue()))
        reports += printed(run.fail("refused"))
    assert reports == ["Cannot reach the server (refused)."]
    run.now = 120.0
    run.do(Expired(HeartbeatDue()))
    run.reply(OK)                                    # the outage is over
    run.now = 150.0
    run.do(Expired(HeartbeatDue()))
    assert printed(run.fail("reset")) == ["Cannot reach the server (reset)."]


@pytest.mark.parametrize("tls, hinted", [(False, True), (True, False)])
def test_a_reset_from_a_server_never_reached_hints_at_tls(tls, hinted):
    """A plain client against a TLS server saw only "(reset)" (an operator's trial)."""
    run = Run(tls=tls)
    run.do(Started())
    run.type("alice")
    said = printed(run.fail("reset"))[0]
    assert ("start the client with --tls" in said) is hinted
    assert said.startswith("Cannot reach the server (reset).")


TLS_REQUIRED = err("tls_required", message="this port speaks TLS: connect with TLS")


@pytest.mark.parametrize("probing", [True, False], ids=["probe", "name"])
def test_a_plain_client_told_the_port_speaks_tls_leaves_saying_so(probing):
    """A trial's plain client at a TLS port asked for the name again and again, each time told
    that the port speaks TLS, then took the password for a name."""
    run = Run(tls=False, check_server=probing)
    actions = run.do(Started())
    if probing:
        [probe] = of(actions, Probe)
        actions = run.do(Replied(probe.request_id, TLS_REQUIRED))
    else:
        run.type("alice")
        actions = run.reply(TLS_REQUIRED)
    assert [(a.code, a.reason) for a in of(actions, Exit)] == [
        (1, "this port speaks TLS: connect with TLS")]
    assert ASK_USER not in printed(actions)
    assert run.do(LineIn("pw")) == []           # what follows is not read as a name


def test_a_staying_client_asks_the_name_only_once_a_probe_says_the_port_speaks_its_protocol():
    """A TLS port takes a plain connection, and says it speaks TLS only to what comes on it:
    a trial's staying client asked for the name first, then left saying so."""
    run = Run(tls=False, check_server=True, stay=True)
    assert of(run.do(Started()), Probe) == []   # the link's opening looks first
    up = run.do(LinkUp())
    assert ASK_USER not in printed(up) and len(of(up, Probe)) == 1
    actions = run.answer_probe(TLS_REQUIRED)
    assert [a.code for a in of(actions, Exit)] == [1] and ASK_USER not in printed(actions)


@pytest.mark.parametrize("reason, help, cafile", [
    ("tls: self-signed certificate",
     "give the server's own certificate with --cafile FILE (cert.pem, from make cert).", None),
    ("tls: self-signed certificate",        # (a trial's was told to give what it had given)
     "the certificate in old.pem is not this server's: give the server's own with --cafile "
     "(the cert.pem its make cert made).", "old.pem"),
    ("tls: Hostname mismatch, certificate is not valid for 'x'.",
     "name the server as its certificate does (the host it was made for), or have one made "
     "for this name.", None),
    ("tls: IP address mismatch, certificate is not valid for '127.0.0.2'.",
     "name the server as its certificate does (the host it was made for), or have one made "
     "for this name.", "cert.pem"),
    ("tls: certificate has expired",        # (a trial's, told to give the --cafile it had)
     "the server's certificate is out of its dates; its operator must make a new one (make "
     "cert) and restart the server.", "cert.pem")])
def test_a_certificate_refused_says_what_would_help(reason, help, cafile):
    """A wrong --cafile was tried again for ever, with nothing said of what would help (a
    trial's)."""
    run = Run(tls=True, cafile=cafile)
    run.do(Started())
    run.type("alice")
    said = printed(run.fail(reason))[0]
    assert said == f"Cannot reach the server ({reason}). That will not change by itself: {help}"


def test_heartbeat_no_session_ends_the_session():
    run = logged_in()
    run.now = 30.0
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply(err("no_session"))) == [
        "Your session has ended. Please log in again.", ASK_USER]


def test_late_heartbeat_reply_after_logout_is_ignored():
    run = logged_in()
    run.now = 30.0
    run.do(Expired(HeartbeatDue()))
    run.type("logout")
    run.reply(OK, kind="logout")
    assert printed(run.reply(err("no_session"), kind="heartbeat")) == []


def test_no_heartbeat_once_logged_out():
    run = logged_in()
    run.type("logout")
    run.reply(OK)
    run.now = 30.0
    assert run.do(Expired(HeartbeatDue())) == []


# -- deliveries ---------------------------------------------------------------------------------

def test_deliveries_after_a_good_hello_are_shown():
    run = logged_in()
    assert run.do(Incoming(7, hello(7))) == proven(7)       # it proves the key back
    assert printed(run.do(Incoming(7, {"type": "message", "from": "bob", "text": "hi"}))) == [
        "bob: hi"]
    assert printed(run.do(Incoming(7, {"type": "broadcast", "from": "carol", "text": "yo"}))) == [
        "carol (to everyone): yo"]
    assert printed(run.do(Incoming(7, {"type": "presence", "user": "bob", "online": False}))) == [
        "bob has logged out."]
    assert run.do(Incoming(7, {"type": "bye"})) == [CloseConn(7)]


def test_a_presence_batch_is_shown_as_single_notices_in_order_without_our_own():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    batch = {"type": "presence", "changes": [["bob", True], ["alice", True], ["carol", True],
                                             ["bob", False], ["dave"], "junk"]}
    actions = run.do(Incoming(7, batch))
    assert printed(actions) == ["bob has logged in.", "carol has logged in.",
                                "bob has logged out."]
    assert [a.text for a in of(actions, Log)] == ["malformed presence delivery ignored"] * 2
    assert [(a.kind, a.sender) for a in of(actions, Show)] == [
        ("joined", "bob"), ("joined", "carol"), ("left", "bob")]
    assert of(run.do(Incoming(7, {"type": "presence", "changes": "bob"})), Log) == [
        Log("malformed presence delivery ignored")]


@pytest.mark.parametrize("first", [
    {"type": "hello", "proof": "wrong"},
    {"type": "hello"},
    {"type": "message", "from": "mallory", "text": "trust me"},
])
def test_a_connection_without_the_right_hello_is_refused_and_then_ignored(first):
    run = logged_in()
    actions = run.do(Incoming(7, first))
    assert CloseConn(7) in actions and of(actions, Log) and printed(actions) == []
    assert run.do(Incoming(7, {"type": "message", "from": "mallory", "text": "x"})) == []


def test_hello_when_not_logged_in_is_refused():
    run = Run()
    run.do(Started())
    assert CloseConn(3) in run.do(Incoming(3, hello(3)))


def test_closed_connection_is_forgotten():
    run = logged_in()
    run.do(Incoming(7, hello(7, key="wrong")))
    run.do(IncomingClosed(7))
    # the reactor may reuse nothing, but a new conn with the same id starts unproven
    run.accepted.discard(7)
    assert run.do(Incoming(7, hello(7))) == proven(7)


def test_unknown_and_malformed_deliveries_are_logged():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    actions = run.do(Incoming(7, {"type": "gossip"}))
    assert printed(actions) == [] and of(actions, Log)
    actions = run.do(Incoming(7, {"type": "message", "from": "bob"}))
    assert printed(actions) == [] and of(actions, Log)


def test_logged_out_elsewhere_asks_for_a_username():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    actions = run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    assert printed(actions) == [
        "You have been logged out because your account logged in elsewhere.", ASK_USER]
    assert Cancel(HeartbeatDue()) in actions
    assert requests(run.type("alice")) == [{"type": "check_user", "user": "alice"}]
    assert run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"})) == []


def test_a_session_timed_out_is_told_when_the_server_says_so():
    """(a trial's staying client heard of its time-out only at its next heartbeat)"""
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    actions = run.do(Incoming(7, {"type": "logged_out", "reason": "timed_out", "seconds": 31}))
    assert printed(actions) == [
        "Your session timed out: the server heard nothing from this client for 31 s, and ended "
        "it. Please log in again.", ASK_USER]
    assert Cancel(HeartbeatDue()) in actions


def test_a_script_logged_out_elsewhere_stops_with_status_1():
    run = logged_in(scripted=True)
    run.do(Incoming(7, hello(7)))
    run.type("online")
    actions = run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    assert printed(actions) == [
        "You have been logged out because your account logged in elsewhere."]   # no prompt
    assert Exit(1, "the account logged in elsewhere, which ended the session; the rest of "
                   "the input was not read") in actions


def test_a_script_whose_session_timed_out_stops_and_says_so():
    run = logged_in(scripted=True)
    run.now += 36.0                                   # stopped, then continued
    run.do(Expired(HeartbeatDue()))
    actions = run.reply(err("no_session"), "heartbeat")
    assert printed(actions) == [
        "Your session timed out: this client sent nothing for 36 s (it was stopped, or the "
        "computer slept), and the server ended it. Please log in again."]
    assert Exit(1, "the session timed out; the rest of the input was not read") in actions


def test_a_script_whose_input_had_ended_does_not_speak_of_the_rest_of_it():
    """(a trial's piped run, its input at an end, said the rest of it was not read)"""
    run = logged_in(scripted=True)
    run.type("message bob the last line")
    run.do(InputEnded())
    actions = run.reply(err("no_session", restarted=True), "message")
    assert [a.reason for a in of(actions, Exit)] == [
        "the server restarted, which ended the session; 1 message was not sent (listed above)"]


def script_timed_out_with_a_message_in_flight():
    """A script stopped past its time-out, then continued: its heartbeat and its next message
    go out together, and the heartbeat's no_session comes back first."""
    run = logged_in(scripted=True)
    run.now += 36.0
    run.do(Expired(HeartbeatDue()))
    run.type("message bob late words")
    run.type("message bob after it")
    actions = run.reply(err("no_session"), "heartbeat")
    assert not of(actions, Exit)            # the message's answer is on its way
    return run


def test_a_script_whose_session_ended_waits_for_its_message_in_flight_to_be_answered():
    run = script_timed_out_with_a_message_in_flight()
    actions = run.reply(err("no_session"), "message")
    assert printed(actions) == [     # (the line after it was not read: not a message yet)
        "Not sent (the server never acknowledged it): message bob late words"]
    assert Exit(1, "the session timed out; the rest of the input was not read; 1 message was "
                   "not sent (listed above)") in actions


def test_a_script_waiting_for_its_message_in_flight_stops_when_the_answer_is_late():
    run = script_timed_out_with_a_message_in_flight()
    run.now += run.client.settings.exit_wait_s
    actions = run.do(Expired(ExitDue()))
    assert printed(actions)[0] == ("Perhaps not sent (the server may have it; it may yet "
                                   "arrive): message bob late words")
    assert Exit(1, "the session timed out; the rest of the input was not read; 1 message was "
                   "perhaps not sent (listed above)") in actions
    assert run.reply(err("no_session"), "message") == []        # done: nothing more


def test_reply_for_an_ended_session_is_dropped_but_frees_input():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    run.type("online")
    run.type("block bob")                             # queued: typed for the session
    run.type("message bob kept")
    ended = run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    assert printed(ended)[-3:] == [
        "You are not logged in: your message waits, and goes once you log in again as alice.",
        "What you typed as it ended (1 line) was not used.", ASK_USER]   # not a user name
    actions = run.reply(err("no_session"), kind="online")
    assert printed(actions) == [] and requests(actions) == []
    assert requests(run.type("alice")) == [{"type": "check_user", "user": "alice"}]


def test_a_delivery_arriving_before_the_welcome_waits_for_its_proof():
    # stored messages may come in before the login reply is handled: the server's hello
    # waits for the key the welcome brings, then is answered, and the messages follow
    run = Run()
    at_password(run)
    assert run.do(Incoming(4, hello(4))) == []                    # held, unanswered
    actions = run.reply(WELCOME)
    assert printed(actions) == ["You have successfully logged in."]
    assert proof_back(4) in actions
    assert printed(run.do(Incoming(4, {"type": "message", "from": "bob", "text": "old",
                                       "seq": 1}))) == ["bob: old"]


def test_a_frame_after_a_held_hello_is_refused_it_is_not_the_server():
    """The server sends nothing after its hello until we prove the key back, so anything
    more there is someone else's, and nothing piles up in memory while the login goes on."""
    run = Run()
    at_password(run)
    run.do(Incoming(4, hello(4)))
    actions = run.do(Incoming(4, {"type": "message", "from": "bob", "text": "x", "seq": 1}))
    assert CloseConn(4) in actions and printed(actions) == []
    assert printed(run.reply(WELCOME)) == ["You have successfully logged in."]


def test_held_deliveries_with_the_wrong_proof_are_refused_at_welcome():
    run = Run()
    at_password(run)
    run.do(Incoming(4, hello(4, key="forged")))
    actions = run.reply(WELCOME)
    assert CloseConn(4) in actions and not [a for a in of(actions, SendTo) if a.conn == 4]


@pytest.mark.parametrize("outcome", ["wrong", "fail"])
def test_held_deliveries_are_refused_when_the_login_fails(outcome):
    run = Run()
    at_password(run)
    run.do(Incoming(4, hello(4)))
    actions = run.reply(err("wrong_password")) if outcome == "wrong" else run.fail()
    assert CloseConn(4) in actions


def test_held_deliveries_are_refused_when_the_login_is_locked():
    run = Run()
    at_password(run)
    run.do(Incoming(4, hello(4)))
    assert CloseConn(4) in run.reply(err("locked"))


# -- leaving ------------------------------------------------------------------------------------

@pytest.mark.parametrize("event", [Interrupted(), InputEnded()])
def test_leaving_when_not_logged_in_exits_at_once(event):
    run = Run()
    run.do(Started())
    assert run.do(event) == [Exit(0)]


def test_interrupt_at_the_password_prompt_exits_at_once():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)                                   # asked for the password: nothing in flight
    assert Exit(0) in run.do(Interrupted())


@pytest.mark.parametrize("event", [Interrupted(), InputEnded()])
def test_leaving_when_logged_in_logs_out_then_exits_on_the_reply(event):
    run = logged_in(exit_wait_s=2.0)
    run.now = 10.0
    actions = run.do(event)
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert Arm(ExitDue(), 12.0) in actions and Cancel(HeartbeatDue()) in actions
    assert Exit(0) not in actions
    assert run.reply(OK) == [Exit(0)]


@pytest.mark.parametrize("line", ["online", "whoelse", "WhoElse"])
def test_whoelse_is_online(line):
    run = logged_in()
    assert run.type(line)
    assert run.open[run.last()]["type"] == "online"


@pytest.mark.parametrize("line", ["quit", "exit", "QUIT"])
def test_quit_logs_out_then_exits_on_the_reply(line):
    run = logged_in(exit_wait_s=2.0)
    run.now = 10.0
    actions = run.do(LineIn(line))
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert Arm(ExitDue(), 12.0) in actions and Exit(0) not in actions
    assert run.reply(OK) == [Exit(0)]


def test_ctrl_c_as_the_login_goes_waits_for_it_and_logs_out_of_what_it_made():
    """(a trial's Ctrl-C just after the password left the session online until it timed out,
    31 s later, its messages waiting for it)"""
    run = Run(exit_wait_s=2.0)
    at_password(run)
    assert Exit(0) not in run.do(Interrupted())
    assert requests(run.reply(WELCOME, "login")) == [{"type": "logout", "token": "t1"}]
    assert Exit(0) in run.reply(OK, "logout")
    refused = Run(exit_wait_s=2.0)
    at_password(refused)
    refused.do(Interrupted())
    assert Exit(0) in refused.reply(err("wrong_password", attempts_left=2), "login")
    unanswered = Run(exit_wait_s=2.0)
    at_password(unanswered)
    unanswered.do(Interrupted())
    unanswered.now = 2.0
    # (a trial's left without a word, and was shown online once the server went on)
    assert unanswered.do(Expired(ExitDue())) == [Exit(0, "the login got no answer: if the "
                                                         "server takes it later, you show as "
                                                         "online until it times the session "
                                                         "out")]


def test_leaving_exits_when_the_logout_fails():
    run = logged_in()
    run.do(Interrupted())
    assert Exit(0) in run.fail("refused")


def test_leaving_exits_after_the_wait_without_a_reply():
    run = logged_in()
    run.do(Interrupted())
    run.now = 2.0
    assert Exit(0, "the logout got no answer: you may show as online until the server times "
                   "the session out") in run.do(Expired(ExitDue()))
    assert run.reply(OK) == []                       # nothing after Exit


def test_a_second_interrupt_exits_at_once():
    run = logged_in()
    run.do(Interrupted())
    assert run.do(Interrupted()) == [Exit(0)]


def test_a_hang_up_logs_out_as_ctrl_c_but_never_cuts_the_logout_short():
    """A closed terminal window: SIGHUP, and the input ends too, in either order, and the
    hang-up may come twice; the logout goes out and is waited for (a trial's exited first)."""
    run = logged_in()
    assert requests(run.do(HungUp())) == [{"type": "logout", "token": "t1"}]
    assert run.do(HungUp()) == [] and run.do(InputEnded()) == []
    assert run.reply(OK, "logout") == [Exit(0)]
    run = logged_in()
    assert requests(run.do(InputEnded())) == [{"type": "logout", "token": "t1"}]
    assert run.do(HungUp()) == []
    assert run.reply(OK, "logout") == [Exit(0)]


def test_input_end_waits_for_queued_lines():
    run = Run()
    run.do(Started())
    for line in ["alice", "pw", "message bob hi"]:
        run.type(line)
    assert run.do(InputEnded()) == []
    run.reply(OK)
    run.reply(WELCOME)
    actions = run.reply({"type": "ok", "stored": False}, kind="message")
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert run.reply(OK) == [Exit(0)]


def test_input_end_after_a_logout_line_exits_without_another_logout():
    run = logged_in()
    run.type("logout")
    run.do(InputEnded())
    actions = run.reply(OK)
    assert printed(actions) == ["You have logged out.", ASK_USER]
    assert actions[-1] == Exit(0) and requests(actions) == []


def _logged_in_with_waiting(waiting, head=0, **settings):
    """A client whose login's welcome said `waiting` messages wait for it (and `head`), and
    the server's delivery connection 7, proven."""
    run = Run(**{"drain_wait_s": 5.0, **settings})
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    run.reply({**WELCOME, "waiting": waiting, "head": head})
    run.do(Incoming(7, hello(7)))
    return run


def _numbered(seq, text):
    return {"type": "message", "from": "bob", "text": text, "seq": seq}


def test_input_end_shows_what_waited_for_the_login_before_logging_out():
    run = _logged_in_with_waiting(2)
    actions = run.do(InputEnded())
    assert requests(actions) == [] and Arm(DrainDue(), 5.0) in actions
    shown = run.do(Incoming(7, _numbered(1, "one")))
    assert printed(shown) == ["bob: one"] and ack(7, 1) in shown
    assert requests(run.do(Incoming(7, _numbered(1, "one")))) == []    # a repeat counts once
    shown = run.do(Incoming(7, _numbered(2, "two")))
    assert printed(shown) == ["bob: two"] and requests(shown) == []
    # the server says bye once both acknowledgements are in: only then the logout
    assert run.do(Incoming(7, {"type": "bye"})) == [CloseConn(7)]
    actions = run.do(IncomingClosed(7))
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert Cancel(DrainDue()) in actions
    assert run.reply(OK) == [Exit(0)]


def test_a_message_numbered_before_this_login_is_shown_as_one_that_waited_for_it():
    """A reviewer's message, held back by a logout (delivered as its session ended, never
    acknowledged), came at a login hours later read as just said. Told apart by its number,
    below the welcome's head, not by the clocks, which may differ by minutes."""
    run = _logged_in_with_waiting(0, head=10)
    before = run.do(Incoming(7, {**_numbered(9, "held back"), "at": 1_765_000_000.0}))
    after = run.do(Incoming(7, {**_numbered(11, "live"), "at": 1_765_000_000.0}))
    assert printed(before) == [
        f"bob (while you were away, sent {sent_words(1_765_000_000.0)}): held back"]
    assert printed(after) == ["bob: live"]


def test_a_scripts_logout_shows_what_waited_for_the_login_before_logging_out():
    """A trial's script that logged in and out showed what waited for it in some runs, in
    others after its logout, then again at each later login."""
    run = _logged_in_with_waiting(1, scripted=True)
    assert requests(run.type("logout")) == []           # it waits for the one kept
    shown = run.do(Incoming(7, _numbered(1, "one")))
    assert printed(shown) == ["bob: one"] and ack(7, 1) in shown
    run.do(Incoming(7, {"type": "bye"}))
    assert requests(run.do(IncomingClosed(7))) == [{"type": "logout", "token": "t1"}]


@pytest.mark.parametrize("answered", [False, True], ids=["logout on its way", "logged out"])
def test_a_message_that_comes_once_the_logout_went_is_neither_shown_nor_acknowledged(answered):
    """Acknowledged after the logout, the acknowledgement came too late and the next login
    showed the message again: it waits on the server for that login instead."""
    run = _logged_in_with_waiting(0)
    run.type("logout")
    if answered:
        assert "You have logged out." in printed(run.reply(OK))
    late = run.do(Incoming(7, _numbered(1, "late")))
    assert printed(late) == [] and not of(late, SendTo)
    if not answered:
        assert "You have logged out." in printed(run.reply(OK))
    run.type("alice")                                   # the next login shows it
    run.reply(OK)
    run.type("pw")
    run.reply(WELCOME)
    run.do(Incoming(8, hello(8)))
    shown = run.do(Incoming(8, {**_numbered(1, "late"), "offline": True}))
    assert printed(shown) == ["bob (while you were away): late"] and ack(8, 1) in shown


def test_input_end_waits_for_what_waited_no_longer_than_drain_wait():
    run = _logged_in_with_waiting(3)
    run.do(InputEnded())
    run.do(Incoming(7, _numbered(1, "one")))
    run.now = 5.0
    actions = run.do(Expired(DrainDue()))
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert ("the session ends; 2 of the messages that waited for this login still wait for "
            "the next") in [a.text for a in actions if isinstance(a, Log)]


def test_input_end_without_anything_waiting_logs_out_at_once():
    run = _logged_in_with_waiting(0)
    actions = run.do(InputEnded())
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    assert not [a for a in actions if isinstance(a, Arm) and a.key == DrainDue()]


@pytest.mark.parametrize("event", [Interrupted(), InputEnded()])
def test_a_message_that_comes_while_logging_out_waits_for_the_next_login(event):
    # shown and acknowledged now, the acknowledgement could reach the server after the logout
    # and the next login would show it again: it is left for that login, and shown once there
    run = _logged_in_with_waiting(0)
    run.do(event)
    actions = run.do(Incoming(7, _numbered(1, "late")))
    assert printed(actions) == [] and not [a for a in actions if isinstance(a, SendTo)]
    # said once, not once a message (a window's closing logged 157 lines: a trial's)
    assert [a.text for a in actions if isinstance(a, Log)] == [
        "message 1 came while logging out; it waits for the next login, as any that come "
        "after it"]
    more = run.do(Incoming(7, _numbered(2, "later")))
    assert printed(more) == [] and [a for a in more if isinstance(a, (Log, SendTo))] == []
    assert run.reply(OK) == [Exit(0)]


def test_interrupt_drops_queued_lines():
    run = logged_in()
    run.type("online")
    run.type("broadcast never sent")
    run.do(Interrupted())
    actions = run.reply({"type": "online", "users": []}, kind="online")
    assert requests(actions) == []
    # (counted as the program ends, as a message the server never took is: a window shows it)
    assert run.reply(OK, kind="logout") == [Exit(0, "1 message was not sent")]


def test_a_quit_says_which_commands_it_left_undone_or_perhaps_done():
    """(a trial's Ctrl-C, with the server stopped, left an unblock on its way without a word,
    and the server did it once it went on; the lines behind it were "Not read: 2 lines")"""
    run = logged_in()
    run.type("unblock bob")                         # sent; the server does not answer
    run.type("block carol")
    run.type("message bob later")
    assert printed(run.do(Interrupted())) == [
        "Not done (you quit before it went): block carol",
        "Not sent (you quit before it went): message bob later"]
    run.now = 10.0
    actions = run.do(Expired(ExitDue()))
    assert printed(actions) == [
        "Perhaps not done (you quit before the server answered): unblock bob"]
    # both said as the program ends (a window shows only that)
    assert of(actions, Exit) == [Exit(0, "the logout got no answer: you may show as online "
                                         "until the server times the session out; 1 message "
                                         "was not sent")]
    # what was not read before a login is counted, never shown: it may be a password
    early = Run()
    early.do(Started())
    early.type("alice")                             # its check waits for the server
    early.type("secret")
    assert printed(early.do(Interrupted())) == ["Not read: 1 line you typed before quitting."]


def test_a_quit_says_what_was_typed_after_it_goes_unread():
    """(a trial's script ran on past its `quit` unsaid, status 0)"""
    run = logged_in(scripted=True)
    run.type("online")                  # waits for its answer: the rest is queued behind it
    run.type("quit")
    run.type("message bob never")
    run.type("block carol")
    actions = run.reply({"type": "online", "users": []}, "online")
    assert printed(actions)[-2:] == ["Not sent (you quit before it went): message bob never",
                                     "Not done (you quit before it went): block carol"]
    assert [f["type"] for f in requests(actions)] == ["logout"]
    assert of(run.reply(OK, "logout"), Exit) == [Exit(1, "1 message was not sent (listed "
                                                      "above); 1 command was not done (said "
                                                      "above)")]


def test_a_scripts_interrupt_counts_what_it_left_in_its_status():
    """(a re-attack's script, interrupted as a stopped server held its `online`, listed two
    messages as not sent and ended 0; its unanswered block was counted as not done)"""
    run = logged_in(scripted=True)
    run.type("block bob")                           # sent; never answered
    run.type("message bob lost1")
    run.do(Interrupted())
    run.now = 10.0
    assert of(run.do(Expired(ExitDue())), Exit) == [Exit(1, "the logout got no answer: you may "
                                                            "show as online until the server "
                                                            "times the session out; 1 message "
                                                            "was not sent (listed above); 1 "
                                                            "command was perhaps not done (said "
                                                            "above)")]
    early = Run(scripted=True)                      # never logged in: lines are only counted
    early.do(Started())
    early.type("alice")
    early.type("pw")
    early.type("online")
    assert of(early.do(Interrupted()), Exit) == [Exit(1, "2 lines were not read (said above)")]


def test_heartbeat_stops_while_exiting():
    run = logged_in()
    run.do(Interrupted())
    run.now = 30.0
    assert run.do(Expired(HeartbeatDue())) == []


def test_a_stray_exit_timer_does_nothing():
    run = logged_in()
    assert run.do(Expired(ExitDue())) == []


def test_a_reply_of_the_wrong_type_is_logged():
    run = logged_in()
    run.type("message bob hi")
    actions = run.reply({"type": "welcome"})
    assert printed(actions) == [] and of(actions, Log)


def test_welcome_judges_only_the_connections_that_waited_for_it():
    run = logged_in()
    run.do(Incoming(7, hello(7)))      # trusted, from the first session
    run.type("logout")
    run.reply(OK)
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    run.do(Incoming(8, hello(8, key="p2")))
    actions = run.reply({**WELCOME, "token": "t2", "proof": "p2"})
    assert proof_back(8, key="p2") in actions and CloseConn(7) not in actions
    assert printed(run.do(Incoming(8, {"type": "message", "from": "bob", "text": "stored",
                                       "seq": 1}))) == ["bob: stored"]


# -- the glue, on a real reactor with a fake server on 127.0.0.1 ---------------------------------


def test_glue_runs_a_piped_session_against_a_server(loop):
    answers = {"login": WELCOME, "online": {"type": "online", "users": ["bob"]}}
    code, out, err, server = run_with_input(loop, answers, "alice\npw\nonline\nmessage bob hi")
    assert code == 0
    assert out.startswith("Please enter username:\nPlease enter password:\n"
                          "You have successfully logged in.\n")
    assert "bob\n" in out
    # the delivery came through the listener
    assert "bob (while you were away): stored \\x1b!\n" in out
    requests_sent = [f["type"] for f in server.seen if f["type"] != "bye"]
    assert requests_sent == ["check_user", "login", "online", "message", "logout"]
    # one per short connection, the first the check that the server is there: it asks nothing
    assert [f["type"] for f in server.seen].count("bye") == 6 and server.seen[0] == {"type": "bye"}
    message = next(f for f in server.seen if f["type"] == "message")
    assert message == {"type": "message", "token": "t1", "to": "bob", "text": "hi",
                       "id": message["id"], "mid": message["mid"]}


def test_a_long_piped_script_is_read_only_as_fast_as_the_server_takes_its_messages(
        loop, monkeypatch):
    """A trial's `yes 'message seas spam' | client.py` held a million lines in memory."""
    texts = [f"m{n:04}" for n in range(1600)]
    script = "alice\npw\n" + "".join(f"message bob {text}\n" for text in texts)
    most = []
    render = TerminalScreen.render

    def counting(screen, action):
        if isinstance(action, Status):
            most.append(action.waiting)
        render(screen, action)
    monkeypatch.setattr(TerminalScreen, "render", counting)
    code, out, err, server = run_with_input(loop, {"login": WELCOME}, script)
    assert code == 0
    assert [f["text"] for f in server.seen if f["type"] == "message"] == texts
    line_bytes = len("message bob m0000\n")
    assert 0 < max(most) <= MAX_WAITING + READ_CHUNK_BYTES // line_bytes + 1


def test_glue_reports_a_server_that_is_not_there(loop):
    unused = Reactor(RealClock()).listen("127.0.0.1", 0, Handler())
    port = unused.port
    unused.close()                                   # nobody listens there now
    code, out, err, _ = run_with_input(loop, {}, "alice\nonline\n", server_port=port)
    assert code == 1                                 # a script stops: its login cannot happen
    # the server is looked for first: no username is asked of a script that cannot log in
    assert out.splitlines() == [f"Cannot reach the server at 127.0.0.1:{port} (refused)."]


def test_a_script_replays_the_originals_second_example_and_ends_with_status_1(loop, capsys):
    """Its lines answer the prompts as a person's would: a wrong name, then the right one;
    three wrong passwords; the name again, still blocked; the password again (a trial's file
    of the original's transcript stopped at the wrong name)."""
    answers = {"check_user": [err("unknown_user"), OK, OK],
               "login": [err("wrong_password", attempts_left=2),
                         err("wrong_password", attempts_left=1),
                         err("too_many_attempts", seconds=30), err("locked", seconds=29),
                         WELCOME]}
    code, out, _, server = run_with_input(
        loop, answers, "colu\ncolumbia\n11\n11\n11\ncolumbia\n116bway\n116bway\nonline\n")
    assert out.splitlines()[:14] == [
        ASK_USER, "Wrong username.", ASK_USER, ASK_PASSWORD,
        "Wrong password. Please try again.", ASK_PASSWORD,
        "Wrong password. Please try again.", ASK_PASSWORD,
        "You have entered wrong password three times. You will be blocked for 30 seconds.",
        ASK_USER, ASK_PASSWORD, "You are still blocked, please try again later (in 29 s)",
        ASK_PASSWORD, "You have successfully logged in."]
    assert _asked(server) == ["check_user", "check_user", "login", "login", "login",
                              "check_user", "login", "login", "online", "logout"]
    assert [f["password"] for f in server.seen if f["type"] == "login"] == [
        "11", "11", "11", "116bway", "116bway"]
    assert code == 1
    assert capsys.readouterr().err == "client.py: 5 logins were refused (said above)\n"


def test_a_script_whose_login_is_refused_to_its_end_ends_with_status_1(loop, capsys):
    code, out, _, server = run_with_input(loop, {"check_user": err("unknown_user")},
                                          "nobody\nalice\n")
    assert code == 1 and out.count("Wrong username.") == 2
    assert _asked(server) == ["check_user", "check_user"]
    # (how many were refused too: a trial's three wrong passwords said only the first part)
    assert capsys.readouterr().err == ("client.py: the input ended before a login succeeded; 2 "
                                       "logins were refused (said above)\n")


def test_a_script_whose_session_the_server_ended_stops_instead_of_reading_on_as_a_login(
        loop, capsys):
    """A trial's script, after a restart, sent its next message line as a user name (and the
    one after it would have gone as a password): it stops, saying so, and lists what was not
    sent."""
    answers = {"login": WELCOME, "message": err("no_session", restarted=True)}
    code, out, _, server = run_with_input(loop, answers,
                                          "alice\npw\nmessage bob one\nonline\nbob\npw\n")
    assert code == 1
    assert "The server has restarted, which ended your session. Please log in again." in out
    assert "Please enter username:" not in out.split("restarted")[1]
    assert "Not sent (the server never acknowledged it): message bob one" in out
    assert _asked(server) == ["check_user", "login", "message"]
    assert capsys.readouterr().err == ("client.py: the server restarted, which ended the "
                                       "session; the rest of the input was not read; 1 message "
                                       "was not sent (listed above)\n")


def test_a_script_whose_private_message_could_not_go_ends_with_status_1(loop, capsys):
    """(a trial's private message, to a user whose address it did not have, ended 0)"""
    code, out, _, _ = run_with_input(loop, {"login": WELCOME}, "alice\npw\nprivate seas hi\n")
    assert "You don't have seas's address. Type getaddress seas first." in out
    assert code == 1 and "1 message was refused" in capsys.readouterr().err


def test_a_script_that_ends_before_a_second_logins_password_ends_with_status_1(loop, capsys):
    code, _, _, _ = run_with_input(loop, {"login": WELCOME}, "alice\npw\nlogout\nalice\n")
    assert code == 1
    assert capsys.readouterr().err == (
        "client.py: the input ended before the password of alice was given\n")


def test_a_script_that_logged_in_and_ran_to_its_end_exits_0(loop):
    code, out, _, server = run_with_input(loop, {"login": WELCOME}, "alice\npw\nonline\n")
    assert code == 0 and _asked(server)[-1] == "logout"


def _asked(server):
    """The requests a FakeServer was sent, without the byes that end their connections."""
    return [frame["type"] for frame in server.seen if frame["type"] != "bye"]


def test_glue_reports_a_server_that_hangs_up(loop):
    code, out, _, _ = run_with_input(loop, {"check_user": None}, "alice\n")
    assert out.startswith("Please enter username:\nCannot reach the server at 127.0.0.1:")
    assert out.endswith(" (the connection closed before a reply).\n")


class WebServer(Handler):
    """Another program at the port: a web server's answer to a line it cannot read."""

    def on_frame(self, conn, line):
        conn.send(b"HTTP/1.0 400 Bad request\r\nContent-Type: text/html\r\n\r\n")
        conn.close("done")


class IrcPort(Handler):
    """The server's own IRC port: it answers a line it cannot read, and keeps the connection."""

    def on_frame(self, conn, line):
        conn.send(b":chat.server 421 * {\"TYPE\":\"BYE\"} :Unknown command\r\n")


class SlowLinkServer(FakeServer):
    """The chat server, its bye come after its frame time: it says too_slow, and closes."""

    def on_frame(self, conn, line):
        if protocol.decode(line)["type"] == "bye" and not self.seen:
            self.seen.append("too late")
            conn.send(protocol.encode(protocol.error("too_slow")))
            conn.close("too slow")
            return
        super().on_frame(conn, line)


def test_glue_takes_the_chat_servers_own_error_to_a_probe_for_the_server(loop):
    """(a trial's slow link had the server answer its probe too_slow: "another program")"""
    code, out, _, _ = run_with_input(loop, {}, "columbia\n", server=SlowLinkServer(loop, {}))
    assert "not the chat server's" not in out and "Please enter username:" in out


@pytest.mark.parametrize("other", [WebServer, IrcPort])
def test_glue_says_when_another_program_answers_at_the_port(loop, other):
    """(a trial's client, pointed at a web server, said "frame is not valid JSON")"""
    code, out, _, _ = run_with_input(loop, {}, "alice\n", server=other())
    assert code == 1 and "not valid JSON" not in out
    assert ("(its answer was not the chat server's). Another program listens at that port "
            "(the server's IRC port, say): check the port.") in out


class CutShort(Handler):
    """The chat server's answer cut short by the network: its first bytes, then the end."""

    def __init__(self, kept):
        self.kept = kept

    def on_frame(self, conn, line):
        conn.send(b'{"type":"ok","stored":false}'[:self.kept])
        conn.close("cut")


@pytest.mark.parametrize("kept", [1, 5, 9, 18])
def test_glue_says_an_answer_cut_short_is_a_connection_closed_before_a_reply(loop, kept):
    """(a lossy trial's cut reply was blamed on another program at the port; a re-check's cut
    within its first 8 bytes still was)"""
    code, out, _, _ = run_with_input(loop, {}, "alice\n", server=CutShort(kept))
    assert "not the chat server's" not in out
    assert "(the connection closed before a reply)" in out


@pytest.mark.parametrize("argv, hint", [
    (["127.0.0.1:4119", "4119"],
     "give the host and the port apart, as in `client.py 127.0.0.1 4119`"),
    (["127.0.0.1:5000", "4119"],            # (the port given apart is the one meant)
     "give the host and the port apart, as in `client.py 127.0.0.1 4119`"),
    (["127.0.0.1:4119/", "4119"],
     "give the host and the port apart, as in `client.py 127.0.0.1 4119`"),
    (["127.0.0.1:4119"],                    # (a reviewer's: "port is required", no more)
     "the server's port is missing: give the host and the port apart, as in `client.py "
     "127.0.0.1 4119`"),
    (["127.0.0.1"], "the server's port is missing: client.py HOST PORT"),
    (["127.0.0.1:abc"],                     # (only a port that can be is suggested)
     "the server's port is missing: give the host and the port apart, as in `client.py "
     "127.0.0.1 PORT`"),
    ([":4119", "4119"], "the host is missing before the port"),
    (["127.0.0.1:4119:", "4119"],
     "give the host and the port apart, as in `client.py 127.0.0.1 4119`"),
    (["http://127.0.0.1", "4119"], "give the host's name or address alone, not a web address")])
def test_a_host_given_with_its_port_or_as_a_web_address_is_told_how_to_give_it(
        capsys, argv, hint):
    """(a trial's 127.0.0.1:48000 was told the client speaks IPv4 only)"""
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2 and capsys.readouterr().err.rstrip().endswith(hint)


def test_bad_arguments_exit_2(capsys):
    for argv in (["127.0.0.1", "99999"], ["127.0.0.1"], ["127.0.0.1", "x"],
                 ["127.0.0.1", "4119", "--heartbeat", "0"], ["no.such.host.invalid", "4119"],
                 ["127.0.0.1", "4119", "--heartbeat", "0.01"]):     # (a trial's: 100 a second)
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err.lower()


def test_an_ipv6_address_is_told_the_client_speaks_ipv4(capsys):
    """A trial's ::1 was told only that it could not be resolved."""
    with pytest.raises(SystemExit):
        parse_args(["::1", "4119"])
    assert "this client speaks IPv4 only" in capsys.readouterr().err


def test_good_arguments():
    args = parse_args(["localhost", "4119", "--heartbeat", "0.5"])
    assert (args.address, args.port, args.heartbeat) == ("127.0.0.1", 4119, 0.5)


def test_glue_answers_a_reply_too_long_with_its_error(loop):
    answers = {"check_user": {"type": "ok", "pad": "x" * 70_000}}
    _, out, _, _ = run_with_input(loop, answers, "alice\n")
    assert protocol.ERRORS["too_long"] in out


# -- the glue's plumbing, with a stand-in core and a virtual clock -------------------------------

def test_glue_timers_deliver_expired_and_same_key_replaces():
    def script(event):
        if isinstance(event, Started):
            return [Arm(("a",), 5.0), Arm(("b",), 6.0), Cancel(("b",)), Arm(("a",), 7.0),
                    Cancel(("never armed",))]
        return []
    core = StandIn(script)
    glue, clock, _ = glue_with(core)
    glue.feed(Started())
    clock.advance(10.0)
    assert [(e, now) for e, now in core.seen if isinstance(e, Expired)] == [(Expired(("a",)), 7.0)]


def test_glue_shows_logs_hides_typing_and_exits():
    core = StandIn(lambda e: [Show("system", "hi \x1b"), Status(Stage.PASSWORD, "a", 0, None,
                                                                  False),
                              Log("diag"), Exit(3)] if isinstance(e, Started) else [])
    glue, _, out = glue_with(core)
    glue.feed(Started())
    assert out.getvalue() == b"hi \\x1b\n"
    terminal = glue.screen.terminal
    assert terminal.secret and terminal.err.getvalue() == b"diag\n"
    assert glue.exit_code == 3


def test_a_keyed_log_line_is_said_once_then_counted_a_minute_later():
    """A stranger's 250 connections to the listening port wrote 250 lines (a trial's)."""
    key = ("refused delivery connections", "a bad frame (bad_json) before hello")
    core = StandIn(lambda e: [Log(f"refused delivery connection {n}: {key[1]}", key)
                              for n in range(250)] if isinstance(e, Started) else [])
    glue, clock, _ = glue_with(core)
    glue.feed(Started())
    err = glue.screen.terminal.err
    assert err.getvalue() == b"refused delivery connection 0: a bad frame (bad_json) before hello\n"
    clock.advance(60.0)
    glue.reactor.run_once(timeout_s=0)
    assert err.getvalue().decode().splitlines()[1:] == [
        "refused delivery connections: a bad frame (bad_json) before hello: 249 more like it in "
        "the last 60 s"]


def test_an_unknown_action_is_a_programming_error():
    glue, _, _ = glue_with(StandIn(lambda e: ["not an action"]))
    with pytest.raises(KeyError):
        glue.feed(Started())


def test_the_terminal_screen_maps_signals_and_the_end_of_input():
    core = StandIn()
    glue, _, _ = glue_with(core)
    screen = glue.screen
    screen._glue = glue
    glue.on_signal(signal.SIGINT)
    screen._on_input(b"one\ntw")
    screen._on_input_end("eof")
    screen._on_input_end("eof")                      # InputEnded only once
    # SIGHUP and SIGTERM, which a closed terminal sends a stopped client one after the other,
    # are a hang-up each: the second does not cut the first's logout short (a trial's did)
    glue.on_signal(signal.SIGHUP)
    glue.on_signal(signal.SIGTERM)
    assert [e for e, _ in core.seen] == [Interrupted(), LineIn("one"), LineIn("tw"), InputEnded(),
                                         HungUp(), HungUp()]


def test_ctrl_d_on_a_terminal_ends_input():
    core = StandIn()
    glue, _, _ = glue_with(core)
    screen = TerminalScreen(Terminal(0, io.BytesIO(), interactive=True), 0)
    screen._glue = glue
    screen._on_input(b"x\r\x04")
    assert [e for e, _ in core.seen] == [LineIn("x"), InputEnded()]


def test_glue_deliveries_decode_answer_close_and_time_out_idle_peers():
    def script(event):
        if isinstance(event, Incoming) and event.frame.get("type") == "bye":
            return [SendTo(event.conn, {"type": "ok"}), CloseConn(event.conn)]
        return []
    core = StandIn(script)
    glue, clock, _ = glue_with(core)
    listener = glue.reactor.listen("127.0.0.1", 0, glue.listening)
    talker = socket.create_connection(("127.0.0.1", listener.port))
    silent = socket.create_connection(("127.0.0.1", listener.port))
    try:
        talker.sendall(b'{"type":"hello","proof":"x"}\nnot json\n' + b"x" * 70_000 + b"\n"
                       + b'{"type":"bye"}\n')
        pump(glue.reactor, lambda: len(core.events(Incoming)) == 4)
        frames = [e.frame for e in core.events(Incoming)]
        assert frames[0] == {"type": "hello", "proof": "x"}
        assert (frames[1]["code"], frames[2]["code"]) == ("bad_json", "too_long")
        talker.settimeout(WATCHDOG_S)
        received = b""
        while chunk := talker.recv(100):                   # until the client closes
            received += chunk
        assert received == b'{"type":"ok"}\n'              # then the client closed
        pump(glue.reactor, lambda: len(core.events(IncomingClosed)) == 1)
        clock.advance(60.0)                                 # the silent one is idle too long
        pump(glue.reactor, lambda: len(core.events(IncomingClosed)) == 2)
        assert glue.incoming == {}
        glue._send_to(SendTo(999, {"type": "ok"}))          # gone: nothing happens
        glue._close_conn(CloseConn(999))
    finally:
        talker.close()
        silent.close()
        listener.close()


def test_main_runs_from_the_command_line(tmp_path):
    unused = Reactor(RealClock()).listen("127.0.0.1", 0, Handler())
    port = unused.port
    unused.close()
    script = tmp_path / "input.txt"
    script.write_text("alice\n")
    with open(script, "rb") as stdin:
        done = subprocess.run([sys.executable, "client.py", "127.0.0.1", str(port)], stdin=stdin,
                              capture_output=True, timeout=WATCHDOG_S,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 1                      # the login could not happen
    assert done.stdout.decode() == f"Cannot reach the server at 127.0.0.1:{port} (refused).\n"
    assert done.stderr.decode() == (f"client.py: cannot reach the server at 127.0.0.1:{port} "
                                    f"(refused); the input was not read\n")


@pytest.mark.parametrize("closed, code, err", [
    ("stdout", 2, "client.py: standard output is closed: there is nowhere to show the chat\n"),
    ("stdin", 1, "client.py: the input ended before a login succeeded\n"),   # an empty one
    ("full", 1, "client.py: cannot write to standard output (No space left on device); "
                "logging out: what comes meanwhile waits on the server for the next login\n"
                "client.py: cannot reach the server at 127.0.0.1:{port} "
                "(refused); the input was not read\n"),
])
def test_a_closed_or_failing_standard_stream_is_said_not_a_traceback(closed, code, err):
    """(a trial's `<&-` and `>&-` gave tracebacks, and output to /dev/full exited 0 unsaid)"""
    unused = Reactor(RealClock()).listen("127.0.0.1", 0, Handler())
    port = unused.port
    unused.close()
    streams = {"stdin": {}, "stdout": {}, "full": {"stdout": open("/dev/full", "wb")}}[closed]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # the stream closed in the child: what `<&-` and `>&-` do
    fd = {"stdin": 0, "stdout": 1}.get(closed)
    done = subprocess.run([sys.executable, "client.py", "127.0.0.1", str(port)],
                          input=None if closed == "stdin" else b"alice\n",
                          stdout=streams.get("stdout", subprocess.DEVNULL), stderr=subprocess.PIPE,
                          timeout=WATCHDOG_S, cwd=root,
                          preexec_fn=None if fd is None else (lambda: os.close(fd)))
    if closed == "full":
        streams["stdout"].close()
    assert done.returncode == code
    assert done.stderr.decode() == err.format(port=port)


def test_a_heartbeat_whose_connection_is_slow_to_be_made_is_sent_again_at_once():
    """A lost SYN costs a second; the heartbeat has that second only. Its connection not made
    within URGENT_CONNECT_S, a second connection carries it, and one reply is heard."""
    heartbeat = SendRequest(1, {"type": "heartbeat", "token": "t1"}, urgent=True)
    core = StandIn(lambda e: [heartbeat] if isinstance(e, Started) else [])
    glue, clock, _ = glue_with(core)
    answers = FakeServer(glue.reactor, {"heartbeat": {"type": "ok"}})
    live = glue.reactor.listen("127.0.0.1", 0, answers)
    hung, fillers = hung_listener()
    try:
        glue.server = hung.getsockname()            # the first SYN goes unanswered ...
        glue.feed(Started())
        glue.server = ("127.0.0.1", live.port)      # ... the second one is answered
        clock.advance(URGENT_CONNECT_S)
        pump(glue.reactor, lambda: core.events(Replied))
        clock.advance(REQUEST_TIMEOUT_S)            # the first connection gives up meanwhile
        for _ in range(20):
            glue.reactor.run_once(timeout_s=0.01)
        assert core.events(Replied) == [Replied(1, {"type": "ok", "id": 1})]
        assert core.events(RequestFailed) == []     # one answer is all it needed
    finally:
        for sock in [hung, *fillers]:
            sock.close()
        live.close()


def test_a_message_over_the_limit_is_refused_in_the_users_words_and_not_sent():
    run = logged_in()
    actions = run.do(LineIn("message bob " + "x" * 4001))
    assert requests(actions) == []
    assert printed(actions) == [
        "Your message is 4,001 characters long; the most is 4,000. It was not sent."]
    assert requests(run.do(LineIn("message bob hi")))      # the next one goes out


def test_a_staying_clients_failed_probe_after_its_link_was_taken_asks_the_name_all_the_same():
    """(a re-attack's staying client, its probe reset by a server that allows one connection
    an address, or unanswered by one stopped meanwhile, never asked the server again)"""
    run = Run(check_server=True, stay=True)
    run.do(Started())
    run.do(LinkUp())
    actions = run.do(RequestFailed(run.probes.pop(), "reset"))
    assert printed(actions) == [ASK_USER]                   # no outage: the link is there
    assert all(s.outage is None for s in of(actions, Status))
    assert requests(run.type("alice")) == [{"type": "check_user", "user": "alice"}]


def test_a_script_whose_commands_were_not_done_ends_with_status_1_saying_how_many():
    """(a re-attack's script, its block and unblock not done in an outage, ended 0 with
    nothing on standard error)"""
    run = logged_in(scripted=True)
    run.type("block bob")
    assert printed(run.fail("refused", "block")) == [
        "Cannot reach the server (refused).",
        "block bob was not done: type it again once the server is back."]
    run.do(InputEnded())
    actions = run.reply(OK, "logout")
    assert [(a.code, a.reason) for a in of(actions, Exit)] == [
        (1, "1 command was not done (said above)")]


def test_a_message_to_oneself_is_refused_as_typed_not_after_an_outage():
    """(a trial's, typed in an outage, was refused by the server after the next login, with
    nothing said of which line it answered; a review's, typed at the prompt a session's end
    left, was kept for the next login)"""
    run = logged_in()
    shown = run.type("message alice note to self")
    assert requests(shown) == []
    assert printed(shown) == ["You cannot send a message to yourself."]
    assert requests(run.type("message bob hi"))         # others' still go
    run.reply({"type": "ok", "stored": False}, "message")
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    shown = run.type("message alice at the prompt")
    assert printed(shown) == ["You cannot send a message to yourself.", ASK_USER]
    assert requests(shown) == [] and not run.client.outbox.entries


@pytest.mark.parametrize("line, said", [
    ("block alice", "You cannot block yourself."),
    ("unblock alice", "You cannot unblock yourself."),
    ("getaddress alice", "You cannot get your own address.")])
def test_a_command_naming_oneself_is_refused_as_typed(line, said):
    """(a re-trial's, typed in an outage, was to be typed again once the server was back,
    only to be refused)"""
    run = logged_in()
    shown = run.type(line)
    assert printed(shown) == [said] and requests(shown) == []


def test_a_heartbeat_answer_that_messages_wait_unreached_is_said_once_until_one_comes():
    """(an operator's trial's client behind NAT heard nothing for minutes, and nothing said
    why: its heartbeats were answered ok)"""
    run = logged_in()

    def beat():
        run.now += 30
        run.do(Expired(HeartbeatDue()))
        return run.reply({"type": "ok", "head": 5, "unreached": True}, "heartbeat")

    said = printed(beat())
    assert len(said) == 1 and "--stay-connected" in said[0]
    assert printed(beat()) == []                                # said once ...
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "message", "from": "bob", "text": "hi", "seq": 1}))
    assert len(printed(beat())) == 1                            # ... until one came through


def test_the_unreached_warning_is_said_again_in_a_new_session():
    """(a re-check's client, logged out and in again, its port still unreachable, was not
    told the second time)"""
    run = logged_in()
    run.now += 30
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply({"type": "ok", "head": 5, "unreached": True}, "heartbeat"))
    run.type("logout")
    run.reply(OK, "logout")
    run.login()
    run.now += 30
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply({"type": "ok", "head": 5, "unreached": True}, "heartbeat"))
