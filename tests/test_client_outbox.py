"""The client's outbox: messages wait, in order, until the server acknowledges them."""
import pytest

from client_leaving import MAX_WAITING
from client_events import (Arm, Cancel, Exit, ExitDue, Expired, Fate, Incoming,
                           InputEnded, Interrupted, LinkUp, Log, OutageWaitDue, OutboxRetry,
                           PauseInput, ResumeInput, ShowFate, ShowSending, Started)
from client_helpers import (OK, WELCOME, Run, ack, err, hello, logged_in, of, printed,
                            requests)
from terminal import ASK_USER

RETRY = OutboxRetry()


def logged(actions):
    return [action.text for action in actions if type(action) is Log]


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
    for n in range(3, 101):                 # then once every 100, not once each
        assert printed(run.type(f"broadcast {n}")) == ([
            "The server has not taken your earlier messages yet; this one waits behind them "
            "(100 waiting)."] if n == 100 else [])
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
    assert Exit(0, "1 message was not sent") in actions


def test_a_message_that_went_out_unanswered_is_reported_as_perhaps_sent_at_exit():
    """No answer does not mean not stored: a trial's "Not sent" message arrived, and the user
    would have sent it again (a new run's id: stored twice). A connection refused is sure."""
    run = logged_in()
    run.type("message bob maybe words")
    run.fail("timed out")
    run.type("message bob later words")
    run.do(Interrupted())
    shown = printed(run.reply(OK, "logout"))
    assert shown[-2:] == [
        "Perhaps not sent (the server may have it; it may yet arrive): message bob maybe words",
        "Not sent (the server never acknowledged it): message bob later words"]


def test_a_message_answered_unavailable_is_reported_as_perhaps_sent_at_exit():
    """The server holds a write it answered `unavailable` and commits it once the disk takes
    it: a trial's message reported "Not sent" arrived."""
    run = logged_in()
    run.type("message bob held words")
    run.reply({"type": "error", "code": "unavailable", "seconds": 1}, "message")
    run.do(Interrupted())
    shown = printed(run.reply(OK, "logout"))
    assert shown[-1] == ("Perhaps not sent (the server may have it; it may yet arrive): "
                         "message bob held words")


def test_a_message_in_flight_at_exit_is_reported_as_perhaps_sent():
    run = logged_in()
    run.type("message bob flying words")
    run.do(Interrupted())
    assert [f["type"] for f in run.open.values()] == ["message", "logout"]
    shown = printed(run.reply(OK, "logout"))
    assert shown[-1] == ("Perhaps not sent (the server may have it; it may yet arrive): "
                         "message bob flying words")


def test_end_of_input_waits_for_messages_the_server_asked_to_slow_down():
    run = logged_in(scripted=True)
    run.type("message bob one")
    run.type("message bob two")
    run.reply({"type": "error", "code": "slow_down", "seconds": 1}, "message")
    run.do(InputEnded())
    assert run.open == {}                       # no logout: they wait for their turn
    run.now += 1
    assert [f["text"] for f in requests(run.do(Expired(RETRY)))] == ["one"]
    assert [f["text"] for f in requests(run.reply({"type": "ok", "stored": True},
                                                  "message"))] == ["two"]
    assert [f["type"] for f in requests(run.reply({"type": "ok", "stored": True},
                                                  "message"))] == ["logout"]


def test_end_of_input_in_an_outage_waits_for_the_server_to_take_what_is_kept():
    """A trial's script ended a second into a server's restart, listing 95 messages as not
    sent right after it had said they would be."""
    run = logged_in(scripted=True)
    run.type("message bob one")
    run.fail("refused")
    actions = run.do(InputEnded())
    assert run.open == {}                       # no logout yet
    assert printed(actions) == ["The input has ended: waiting up to 30 s for the server to "
                                "take 1 message."]
    run.now += 1
    assert [f["text"] for f in requests(run.do(Expired(RETRY)))] == ["one"]
    actions = run.reply({"type": "ok", "stored": True}, "message")      # the server is back
    assert [f["type"] for f in requests(actions)] == ["logout"]
    assert Exit(0, "") in run.reply(OK, "logout")


def test_end_of_input_in_an_outage_gives_up_after_its_wait_and_lists_what_was_not_sent():
    run = logged_in(scripted=True)
    run.type("message bob one")
    run.type("message bob two")
    run.fail("refused")
    run.do(InputEnded())
    run.now += 30
    actions = run.do(Expired(OutageWaitDue()))
    assert "the server took no message in 30 s; 2 messages waiting" in logged(actions)
    assert [f["type"] for f in requests(actions)] == ["logout"]
    actions = run.fail("refused")
    assert "Not sent (the server never acknowledged it): message bob two" in printed(actions)
    assert Exit(1, "2 messages were not sent (listed above)") in actions


def test_end_of_input_in_an_outage_gives_up_on_time_with_a_try_in_flight():
    """(a trial's said "waiting up to 30 s" and listed what was not sent 9 s after that, when
    the try in flight to a stopped server timed out)"""
    run = logged_in(scripted=True)
    run.type("message bob one")
    run.fail("timed out")
    run.do(InputEnded())
    run.now += 29
    assert [f["text"] for f in requests(run.do(Expired(RETRY)))] == ["one"]   # in flight
    run.now += 1
    actions = run.do(Expired(OutageWaitDue()))
    assert [f["type"] for f in requests(actions)] == ["logout"]     # not after the try
    run.now += 2
    actions = run.do(Expired(ExitDue()))
    assert "Perhaps not sent (the server may have it; it may yet arrive): message bob one" in (
        printed(actions))
    assert Exit(1, "the logout got no answer: you may show as online until the server times "
                   "the session out; 1 message was perhaps not sent (listed above)") in actions


def test_a_script_is_read_no_further_while_a_thousand_wait_and_again_once_half_have_gone():
    """A trial's `yes | client.py` grew by 25 MB a second while the server took 20 a second."""
    run = logged_in(scripted=True)
    paced = []
    for n in range(MAX_WAITING):
        paced += [a for a in run.type(f"message bob {n}") if type(a) in (PauseInput, ResumeInput)]
    assert paced == [PauseInput()]
    for n in range(MAX_WAITING // 2 - 1):
        actions = run.reply({"type": "ok", "stored": True}, "message")
        assert ResumeInput() not in actions
    assert ResumeInput() in run.reply({"type": "ok", "stored": True}, "message")


def test_a_paused_script_whose_server_stays_away_stops_after_its_wait_and_says_so():
    """Paused, it never read its end: a reviewer's script waited for ever on a server gone."""
    run = logged_in(scripted=True)
    for n in range(MAX_WAITING):
        run.type(f"message bob {n}")
    actions = run.fail("refused")
    assert "The input waits: waiting up to 30 s for the server to take 1,000 messages." in (
        printed(actions))
    run.now += 30
    actions = run.do(Expired(OutageWaitDue()))
    assert Exit(1, "the server took no message in 30 s; the rest of the input was not read; "
                   "1,000 messages were not sent (listed above)") in actions
    assert "Not sent (the server never acknowledged it): message bob 999" in printed(actions)


def test_a_paused_script_at_a_login_prompt_reads_on_for_its_next_login():
    run = logged_in(scripted=True)
    for n in range(MAX_WAITING):
        run.type(f"message bob {n}")
    actions = run.reply(err("no_session"), "message")      # the session ended under it
    assert ResumeInput() in actions


def test_a_scripts_logout_waits_for_the_messages_typed_before_it():
    """(a reviewer's 3,000 broadcasts and a logout: the logout went first, 717 not sent)"""
    run = logged_in(scripted=True)
    run.type("broadcast one")
    run.type("broadcast two")
    run.type("logout")
    assert [f["type"] for f in run.open.values()] == ["broadcast"]      # not the logout
    run.reply({"type": "ok", "skipped": 0}, "broadcast")
    assert [f["type"] for f in run.open.values()] == ["broadcast"]
    run.reply({"type": "ok", "skipped": 0}, "broadcast")
    assert [f["type"] for f in run.open.values()] == ["logout"]


def test_a_later_outage_has_its_own_wait():
    """A script's logout waited out one outage; logged in again, its next logout in the next
    outage waits too."""
    run = logged_in(scripted=True)
    run.type("broadcast one")
    run.fail("refused")
    run.type("logout")
    run.now += 30
    run.do(Expired(OutageWaitDue()))                    # the logout goes after the wait
    run.reply(OK, "logout")
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    run.reply(WELCOME)                                  # the server is back: "one" goes
    run.reply({"type": "ok", "skipped": 0}, "broadcast")
    run.type("broadcast two")
    run.fail("refused")                                 # and it is away again
    actions = run.type("logout")
    assert run.open == {}                               # the logout waits its own 30 s
    assert "The input waits: waiting up to 30 s for the server to take 1 message." in (
        printed(actions))


def test_a_scripts_logout_in_an_outage_waits_its_time_then_goes():
    run = logged_in(scripted=True)
    run.type("broadcast one")
    run.fail("refused")
    run.type("logout")
    assert run.open == {}
    run.now += 30
    actions = run.do(Expired(OutageWaitDue()))
    assert [f["type"] for f in requests(actions)] == ["logout"]


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
    # its answer names it: nothing typed just now shows which it is (a trial's user could not
    # tell which of two such notices was which)
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [
        "bob is offline; your message will be delivered when they log in. (message bob after "
        "the restart)"]
    run.type("message bob typed now")
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [
        "bob is offline; your message will be delivered when they log in."]


def test_a_logout_with_messages_waiting_says_they_wait_for_the_next_login():
    run = logged_in()
    run.type("message bob one")
    run.fail("timed out")
    run.type("message bob two")
    run.type("logout")
    shown = printed(run.reply(OK, "logout"))
    assert shown[:3] == [
        "The server is back.", "You have logged out.",
        "The server has not acknowledged 2 messages yet: sent again at your next login as "
        "alice, or listed if you quit first."]


def logged_in_again_as_carol():
    """alice's message waits (her session ended), then carol logs in -> the login's actions."""
    run = logged_in()
    run.type("message bob private matter")
    run.reply(err("no_session"), "message")
    run.type("carol")
    run.reply(OK)
    run.type("pw")
    return run.reply({**WELCOME, "user": "carol", "token": "t2"})


def test_waiting_messages_are_not_sent_as_someone_else():
    actions = logged_in_again_as_carol()
    assert "Not sent (you logged in as someone else): message bob private matter" in printed(actions)
    assert requests(actions) == []


def test_a_numbered_delivery_is_shown_once_and_always_acknowledged():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    message = {"type": "message", "from": "bob", "text": "hi", "seq": 5}
    first = run.do(Incoming(7, message))
    assert printed(first) == ["bob: hi"] and ack(7, 5) in first
    again = run.do(Incoming(7, message))                 # redelivered: the ack was lost
    assert printed(again) == [] and ack(7, 5) in again
    older = run.do(Incoming(7, {**message, "seq": 3, "text": "old"}))
    assert printed(older) == []
    newer = run.do(Incoming(7, {**message, "seq": 9, "text": "new"}))
    assert printed(newer) == ["bob: new"]


# -- what the screen is told of each of the user's messages ---------------------------------------

def fates(actions):
    return [(a.ref, a.fate, a.line) for a in of(actions, ShowFate)]


def test_a_run_of_messages_to_an_offline_user_says_so_once_and_a_later_one_again():
    """A file of 300 messages to one offline user printed its notice 197 times (a trial's)."""
    run = logged_in()
    offline = "bob is offline; your message will be delivered when they log in."
    for n in range(5):                  # typed (or read from a file) before the first reply
        run.type(f"message bob {n}")
    run.type("message carol hi")
    said = []
    for _ in range(6):
        said += printed(run.reply({"type": "ok", "stored": True}, "message"))
    assert said == [offline, offline.replace("bob", "carol")]
    run.type("message bob later")       # on its own: told again
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [offline]


def test_slow_down_is_said_once_for_a_run_of_messages():
    run = logged_in()
    for n in range(3):
        run.type(f"message bob {n}")
    said = printed(run.reply(err("slow_down", seconds=2), "message"))
    for _ in range(2):
        run.now += 2
        run.do(Expired(OutboxRetry()))
        said += printed(run.reply(err("slow_down", seconds=2), "message"))
    slowed = ["The server asks us to slow down; your message is kept and sent in 2 s."]
    assert [line for line in said if "slow down" in line] == slowed
    run.now += 2
    run.do(Expired(OutboxRetry()))
    for _ in range(3):
        run.reply(OK, "message")
    assert not run.open
    run.type("message bob later")       # the run is over: told again
    assert printed(run.reply(err("slow_down", seconds=2), "message")) == slowed


def test_each_message_is_shown_on_its_way_then_sent_or_refused_by_its_id():
    run = logged_in()
    actions = run.type("message bob hi")
    assert of(actions, ShowSending) == [ShowSending("c-1", "bob", "hi")]
    assert printed(actions) == []               # the terminal prints nothing for it
    actions = run.reply({"type": "ok", "stored": True}, "message")
    assert fates(actions) == [("c-1", Fate.SENT, "")]
    assert printed(actions) == ["bob is offline; your message will be delivered when they log in."]
    assert of(run.type("broadcast all"), ShowSending) == [ShowSending("c-2", None, "all")]
    assert fates(run.reply({"type": "ok", "skipped": 0}, "broadcast")) == [("c-2", Fate.SENT, "")]
    run.type("message carol hello")
    actions = run.reply(err("blocked"), "message")
    # the refusal's reason is the terminal's line, printed once as before
    assert fates(actions) == [("c-3", Fate.REFUSED, "Your message could not be delivered as the "
                                                     "recipient has blocked you.")]
    assert printed(actions) == ["Your message could not be delivered as the recipient has "
                                "blocked you."]


def test_a_message_kept_for_later_is_not_marked_until_the_server_answers():
    run = logged_in()
    run.type("message bob one")
    assert fates(run.fail("refused")) == [("c-1", Fate.WAITING,
                                           "Waiting to be sent: message bob one")]
    run.do(Expired(RETRY))
    assert fates(run.reply(err("slow_down", seconds=2), "message")) == []
    run.now += 2
    run.do(Expired(RETRY))
    assert fates(run.reply(err("unavailable"), "message")) == []
    run.now += 1
    run.do(Expired(RETRY))
    assert fates(run.reply(OK, "message")) == [("c-1", Fate.SENT, "")]


def test_an_answer_that_is_neither_yes_nor_a_known_no_is_not_shown_as_sent():
    run = logged_in()
    run.type("message bob hi")
    assert fates(run.reply({"type": "what"}, "message")) == [("c-1", Fate.REFUSED, "")]


def test_messages_given_up_are_refused_by_their_ids():
    actions = logged_in_again_as_carol()
    assert fates(actions) == [("c-1", Fate.REFUSED, "Not sent (you logged in as someone else): "
                                                     "message bob private matter")]
    assert [a.why for a in of(actions, ShowFate)] == ["you logged in as someone else"]


def test_a_message_refused_before_it_is_sent_is_never_shown_on_its_way():
    run = logged_in()
    assert of(run.type("message bob " + "x" * 4001), ShowSending) == []


def test_a_message_typed_at_the_name_prompt_after_the_session_ended_waits_for_the_login():
    """A trial typed messages as a restart ended the session: each was "Wrong username.",
    and was lost."""
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    actions = run.type("message bob typed too late")
    assert requests(actions) == []                  # not sent as a name
    assert printed(actions)[-2:] == [
        "You are not logged in: your message waits, and goes once you log in again as alice.",
        ASK_USER]
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    sent = requests(run.reply({**WELCOME, "token": "t2"}))
    assert [(frame["type"], frame["to"], frame["text"]) for frame in sent] == [
        ("message", "bob", "typed too late")]


def test_a_word_for_leaving_at_the_name_prompt_is_told_how_to_leave():
    run = Run()
    run.do(Started())
    run.type("logout")
    assert printed(run.reply(err("unknown_user"))) == [
        "Wrong username. (Type an account's name; Ctrl-D or Ctrl-C leaves.)", ASK_USER]
    run.type("bobby")
    assert printed(run.reply(err("unknown_user")))[0] == "Wrong username."
    script = Run(scripted=True)         # (keys mean nothing to a file: a trial's)
    script.do(Started())
    script.type("logout")
    assert printed(script.reply(err("unknown_user")))[0] == "Wrong username."


@pytest.mark.parametrize("word", ["quit", "EXIT"])
@pytest.mark.parametrize("scripted", [False, True])
def test_quit_at_the_name_prompt_leaves_when_no_account_has_that_name(word, scripted):
    """(a trial's new user typed quit after a logout, and was asked for a name again)"""
    run = Run(scripted=scripted)
    run.do(Started())
    run.type(word)
    assert run.open[run.last()] == {"type": "check_user", "user": word}    # (a name it may be)
    actions = run.reply(err("unknown_user"))
    assert printed(actions) == [] and Exit(0) in actions


def test_exit_at_the_name_prompt_is_a_name_when_an_account_has_it_in_another_case():
    run = Run()
    run.do(Started())
    run.type("exit")
    actions = run.reply(err("unknown_user", like="Exit"))
    assert printed(actions)[0].startswith(
        "Wrong username. (Names are case-sensitive: did you mean Exit?)")
    assert not of(actions, Exit)


def test_quit_at_the_name_prompt_after_a_logout_lists_what_waits_for_the_next_login():
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    run.type("message bob typed too late")
    run.type("quit")
    actions = run.reply(err("unknown_user"))
    assert printed(actions) == [
        "Not sent (you did not log in again as alice): message bob typed too late"]
    assert Exit(0, "1 message was not sent") in actions


def test_a_session_that_ends_as_the_user_leaves_is_no_login_they_chose_not_to_make():
    """A reviewer's window, closed while a message waited, its server restarted meanwhile:
    the message was said not sent because "you did not log in again", and the window closed
    without a word (status 0, the reason on standard error only)."""
    run = logged_in()
    run.type("message bob one")
    run.fail("refused")                     # the server away: the message waits
    run.do(Interrupted())                   # the window's close (as Ctrl-C)
    actions = run.fail("refused", "logout")
    actions += run.do(Expired(ExitDue()))
    assert "Not sent (the server never acknowledged it): message bob one" in printed(actions)
    run = logged_in()
    run.type("message bob one")
    run.fail("refused")
    run.do(Interrupted())
    ended = run.reply(err("no_session", restarted=True), "logout")
    ended += run.do(Expired(ExitDue()))
    assert [a.reason for a in ended if isinstance(a, Exit)] == ["1 message was not sent"]
    assert not any("did not log in again" in line for line in printed(ended))


def test_the_next_user_of_the_same_client_is_told_a_recipient_is_offline_too():
    """A piped run logged in as two users in turn: the second never heard that the user it
    wrote to was offline, because the first had been told (a trial's)."""
    run = logged_in(scripted=True)
    run.type("message bob one")
    run.type("message bob two")
    run.type("logout")
    offline = "bob is offline; your message will be delivered when they log in."
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [offline]
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == []  # (the run's)
    run.reply(OK, "logout")
    run.type("carol")
    run.reply(OK)
    run.type("pw")
    run.reply({**WELCOME, "token": "t2", "user": "carol"})
    run.type("message bob three")
    assert printed(run.reply({"type": "ok", "stored": True}, "message")) == [offline]


def test_lines_typed_behind_a_waiting_one_are_listed_when_the_user_quits():
    """A trial's Ctrl-C, as a stopped server held the message before them, lost two messages
    without a word; a soak's lost 13 so, to Ctrl-C and SIGTERM."""
    run = logged_in()
    run.type("message bob one")                     # in flight: the next lines wait behind it
    run.type("message bob two")
    run.type("broadcast three")
    run.type("online")
    actions = run.do(Interrupted())
    assert printed(actions)[:3] == ["Not sent (you quit before it went): message bob two",
                                    "Not sent (you quit before it went): broadcast three",
                                    "Not done (you quit before it went): online"]
    assert not run.client.lines


def test_lines_typed_ahead_at_the_login_are_counted_never_shown_when_the_user_quits():
    run = Run()
    run.do(Started())
    run.type("alice")                               # its check waits for the server
    run.type("secret password")
    run.type("message bob hi")
    actions = run.do(Interrupted())
    assert "Not read: 2 lines you typed before quitting." in printed(actions)
    assert not [line for line in printed(actions) if "secret" in line or "bob hi" in line]


def test_a_message_at_the_name_prompt_waits_for_the_sessions_user_not_the_last_name_typed():
    """A trial's password, typed at the name prompt by mistake, became the user the message
    waited for; at the real user's login it was "Not sent (you logged in as someone else)"."""
    run = logged_in()
    run.do(Incoming(7, hello(7)))
    run.do(Incoming(7, {"type": "logged_out", "reason": "elsewhere"}))
    run.type("116bway")
    run.reply(err("unknown_user"))
    actions = run.type("message bob after a wrong name")
    assert printed(actions)[-2] == ("You are not logged in: your message waits, and goes once "
                                    "you log in again as alice.")
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    sent = requests(run.reply({**WELCOME, "token": "t2"}))
    assert [(frame["to"], frame["text"]) for frame in sent] == [("bob", "after a wrong name")]


def test_a_script_that_leaves_messages_unsent_ends_with_status_1():
    """A trial's script ran to its end with three listed as not sent, and status 0."""
    run = logged_in(scripted=True)
    run.type("message bob unsent words")
    run.fail("refused")
    run.do(Interrupted())
    actions = run.reply(OK, "logout")
    assert "Not sent (the server never acknowledged it): message bob unsent words" in printed(
        actions)
    assert Exit(1, "1 message was not sent (listed above)") in actions


def test_how_many_wait_is_said_once_for_each_count_while_the_queue_lasts():
    """(a pipe that kept its queue between 500 and 1,000 said each count 4 to 6 times)"""
    run = logged_in()
    run.type("message bob 0")
    run.fail("refused")                                 # the server away: typing goes on
    said = []
    for n in range(1, 100):
        said += printed(run.type(f"message bob {n}"))
    run.now += 1
    run.do(Expired(RETRY))
    said += printed(run.reply(OK, "message"))           # one taken: 99 wait
    said += printed(run.type("message bob again"))      # 100 again: said before
    assert [line.rsplit("(", 1)[1] for line in said if "waits behind them" in line] == [
        "2 waiting).", "100 waiting)."]
    while run.client.outbox.entries:                    # all taken: a new queue, said anew
        run.reply(OK, "message")
    run.type("message bob 1")
    run.fail("refused")
    assert printed(run.type("message bob 2"))[-1].endswith("them (2 waiting).")


def test_a_script_with_lines_that_are_no_command_ends_with_status_1():
    """(a trial's `message seas` without its text, and a typo, ended with status 0)"""
    run = logged_in(scripted=True)
    assert printed(run.type("message bob")) == ["Usage: message <user> <text>"]
    run.type("frob")
    run.do(InputEnded())
    actions = run.reply(OK, "logout")
    assert Exit(1, "2 lines were not understood (said above)") in actions
    interactive = logged_in()
    interactive.type("frob")
    interactive.do(InputEnded())
    assert Exit(0, "") in interactive.reply(OK, "logout")


def test_a_script_whose_messages_were_refused_ends_with_status_1():
    """(a trial's script sent to a user that does not exist, and one too long: status 0)"""
    run = logged_in(scripted=True)
    run.type("message nobody hi")
    refused = printed(run.reply(err("unknown_user"), "message"))
    run.type("message bob " + "x" * 5_001)                   # refused as typed
    run.type("online")
    run.reply({"type": "online", "users": []}, "online")
    run.do(InputEnded())
    actions = run.reply(OK, "logout")
    assert Exit(1, "2 messages were refused (said above)") in actions
    # each is named: a script's lines are not echoed (a trial's 4,000 refusals read alike)
    assert refused == ["User nobody does not exist.", "Not sent: message nobody hi"]


def test_a_script_whose_commands_were_refused_ends_with_status_1():
    """(a trial's script ended 0 after "User nobody does not exist." to a block, and 1 after
    it to a message)"""
    run = logged_in(scripted=True)
    run.type("block nobody")
    assert printed(run.reply(err("unknown_user"), "block")) == ["User nobody does not exist."]
    assert printed(run.type("block alice")) == ["You cannot block yourself."]   # as typed
    run.type("message " + "b" * 200 + " hi")                 # refused as typed
    run.type("block " + "c" * 200)                           # ... and this
    run.type("unblock bob")
    run.reply(OK, "unblock")
    run.do(InputEnded())
    assert Exit(1, "1 message was refused (said above); 3 commands were refused (said "
                   "above)") in run.reply(OK, "logout")


def test_a_script_with_nothing_refused_or_unsent_ends_with_status_0():
    run = logged_in(scripted=True)
    run.type("message bob hi")
    run.reply(OK, "message")
    run.do(InputEnded())
    assert Exit(0, "") in run.reply(OK, "logout")


def test_a_restart_that_ends_the_session_says_what_waits_for_the_next_login():
    """It said only "Please log in again" (a trial's): the message in flight waits."""
    run = logged_in()
    run.type("message bob caught by the restart")
    actions = run.reply(err("no_session", restarted=True), "message")
    assert printed(actions)[-2:] == [
        "The server has not acknowledged 1 message yet: sent again at your next login as alice, "
        "or listed if you quit first.", ASK_USER]


def test_a_staying_script_s_outage_wait_is_not_ended_by_a_connection_the_server_never_answers():
    """The kernel of a stopped server (or a forwarder before it) takes connections: each
    LinkUp ended the 30 s wait and began another, and listed what waits again, for as long as
    the server stayed stopped (a lossy trial's client, 94 s after its input ended). The wait
    ends when the server answers; until then the outbox's backoff goes on."""
    run = logged_in(scripted=True, stay=True)
    run.type("message bob one")
    run.fail("no reply")
    listed = printed(run.do(InputEnded()))
    assert listed == ["The input has ended: waiting up to 30 s for the server to take 1 "
                      "message."]
    for _ in range(3):
        run.now += 5
        up = run.do(LinkUp())
        assert Cancel(OutageWaitDue()) not in up and printed(up) == []
        for kind in ("resume", "message"):
            assert printed(run.fail("no reply", kind)) == []     # (said once, not again)
    run.now = 31.0
    actions = run.do(Expired(OutageWaitDue()))
    assert "the server took no message in 30 s; 1 message waiting" in logged(actions)


def test_a_staying_script_s_outage_wait_ends_once_the_resumed_server_takes_what_waits():
    run = logged_in(scripted=True, stay=True)
    run.type("message bob one")
    run.fail("no reply")
    run.do(InputEnded())
    run.now += 5
    run.do(LinkUp())
    run.reply({"type": "ok", "head": 0}, "resume")
    actions = run.reply({"type": "ok", "stored": True}, "message")
    assert [f["type"] for f in requests(actions)] == ["logout"]


def test_a_scripts_end_waits_for_a_server_that_only_slows_it_down_30_s_at_most():
    """(a re-check's server answered every message slow_down: the script ran for ever)"""
    from client_events import OutboxRetry
    run = logged_in(scripted=True)
    run.type("message bob hi")
    run.do(InputEnded())
    for _ in range(40):                         # a second apart, for 40 s at most
        actions = run.reply(err("slow_down", seconds=1), kind="message")
        if requests(actions):
            break
        run.now += 1.0
        run.do(Expired(OutboxRetry()))
    assert 30.0 <= run.now <= 31.0
    assert requests(actions) == [{"type": "logout", "token": "t1"}]
    done = of(run.reply(OK, kind="logout"), Exit)
    assert done[0].code == 1 and "1 message was not sent" in done[0].reason


def test_a_scripts_login_the_server_only_slows_down_stops_after_30_s():
    from client_events import LoginRetry
    run = Run(scripted=True)
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    for _ in range(40):
        actions = run.reply(err("slow_down", seconds=1), kind="login")
        if of(actions, Exit):
            break
        run.now += 1.0
        run.do(Expired(LoginRetry()))
    assert 30.0 <= run.now <= 32.0
    assert of(actions, Exit)[0].code == 1
    assert "the server asked it to wait for 30 s" in of(actions, Exit)[0].reason
