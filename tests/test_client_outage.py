"""When the server cannot be reached: said once, then kept as data (Status.retry_at) for the
screens to show, and said again when it answers; at the start, the server is looked for
before the username is asked (Settings.check_server)."""
from client_events import (Arm, Exit, Expired, HeartbeatDue, LinkDown, LinkUp, OutboxRetry,
                           Probe, ProbeDue, Prompt, Replied, RequestFailed, Stage, Started,
                           Status)
from client_helpers import Run, logged_in, printed, requests

PROBE_DUE = ProbeDue()

TYPE_AHEAD = "You can type your username now: it is checked once the server answers."

def checking(**settings):
    return Run(check_server=True, server="127.0.0.1:4119", **settings)


def probes(actions):
    return [a.request_id for a in actions if isinstance(a, Probe)]


def status(actions):
    found = [a for a in actions if isinstance(a, Status)]
    return found[-1] if found else None


def test_the_username_is_asked_only_once_the_server_is_there():
    run = checking()
    started = run.do(Started())
    assert Prompt(Stage.USERNAME) not in started and len(probes(started)) == 1
    typed = run.type("alice")
    assert requests(typed) == [] and status(typed).busy   # typed ahead: it waits for the server
    failed = run.do(RequestFailed(probes(started)[0], "refused"))
    assert printed(failed) == ["Cannot reach the server at 127.0.0.1:4119 (refused).",
                               TYPE_AHEAD]              # (a trial's user guessed)
    assert Arm(PROBE_DUE, 1.0) in failed and status(failed).retry_at == 1.0
    run.now = 1.0
    again = run.do(Expired(PROBE_DUE))
    assert len(probes(again)) == 1 and status(again) is None    # the try planned is under way
    failed = run.do(RequestFailed(probes(again)[0], "refused"))
    assert printed(failed) == [] and Arm(PROBE_DUE, 3.0) in failed    # said once; 2 s later
    run.now = 3.0
    answered = run.do(Replied(probes(run.do(Expired(PROBE_DUE)))[0], {}))
    assert printed(answered) == ["The server is back.", "Please enter username:"]
    assert requests(answered) == [{"type": "check_user", "user": "alice"}]   # the line typed
    assert status(answered).outage is None and status(answered).retry_at is None


def test_a_server_there_at_the_start_is_not_mentioned():
    run = checking()
    answered = run.do(Replied(probes(run.do(Started()))[0], {}))
    assert printed(answered) == ["Please enter username:"]


def test_the_probes_back_off_to_30_s():
    run = checking()
    request_id = probes(run.do(Started()))[0]
    waits = []
    for _ in range(7):
        failed = run.do(RequestFailed(request_id, "refused"))
        waits.append([a.at for a in failed if isinstance(a, Arm)][0] - run.now)
        run.now += waits[-1]
        request_id = probes(run.do(Expired(PROBE_DUE)))[0]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_script_stops_when_the_server_is_not_there_at_its_start():
    run = checking(scripted=True)
    started = run.do(Started())
    run.type("alice")
    failed = run.do(RequestFailed(probes(started)[0], "refused"))
    assert Exit(1, "cannot reach the server at 127.0.0.1:4119 (refused); the input was not "
                   "read") in failed
    assert requests(failed) == []


def test_an_outage_at_the_username_is_looked_into_until_the_server_answers():
    run = checking()
    run.do(Replied(probes(run.do(Started()))[0], {}))
    run.type("alice")
    failed = run.fail("refused")
    assert printed(failed) == ["Cannot reach the server at 127.0.0.1:4119 (refused).",
                               "Your user name waits for the server, and is checked as soon "
                               "as it answers."]
    assert Arm(PROBE_DUE, 1.0) in failed
    run.now = 1.0
    answered = run.do(Replied(probes(run.do(Expired(PROBE_DUE)))[0], {}))
    assert printed(answered) == ["The server is back."]
    assert requests(answered) == [{"type": "check_user", "user": "alice"}]


def test_the_name_that_waited_answered_ends_the_outage_and_the_probing():
    run = checking()
    run.do(Replied(probes(run.do(Started()))[0], {}))
    run.type("alice")
    run.fail("refused")
    run.now = 1.0
    run.do(Replied(probes(run.do(Expired(PROBE_DUE)))[0], {}))
    answered = run.reply({"type": "ok"}, "check_user")
    assert printed(answered) == ["Please enter password:"]
    assert run.do(Expired(PROBE_DUE)) == []             # its cancel may come late: harmless


def test_logged_in_the_outage_is_said_once_and_the_status_follows_the_retries():
    run = logged_in()
    run.type("message bob one")
    failed = run.fail("refused")
    assert status(failed).retry_at == 1.0 and status(failed).outage == "refused"
    run.now = 0.5
    assert status(run.type("online")).retry_at == 0.5      # a typed line is a try under way
    run.fail("refused", "online")
    tries = []
    for _ in range(3):
        run.now = status(failed).retry_at
        run.do(Expired([a.key for a in failed if isinstance(a, Arm)][0]))
        failed = run.fail("refused", "message")
        assert printed(failed) == []
        tries.append(status(failed).retry_at - run.now)
    assert tries == [2.0, 4.0, 8.0]
    run.now = status(failed).retry_at
    run.do(Expired(OutboxRetry()))
    back = run.reply({"type": "ok", "stored": False}, "message")
    assert printed(back) == ["The server is back."]
    assert status(back) == Status(Stage.LOGGED_IN, "alice", 0, None, False, retry_at=None)


def test_with_nothing_waiting_a_failed_heartbeat_is_tried_again_with_backoff():
    """An idle user's client said "retrying in 29 s", and went on counting down with the
    server back (a trial's)."""
    run = logged_in()
    run.now = 30.0
    run.do(Expired(HeartbeatDue()))
    failed = run.fail("refused", "heartbeat")
    assert printed(failed) == ["Cannot reach the server (refused)."]
    waits = []
    for _ in range(7):
        waits.append(status(failed).retry_at - run.now)
        run.now = status(failed).retry_at
        assert [f["type"] for f in requests(run.do(Expired(HeartbeatDue())))] == ["heartbeat"]
        failed = run.fail("refused", "heartbeat")
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    run.now = status(failed).retry_at
    run.do(Expired(HeartbeatDue()))
    assert printed(run.reply({"type": "ok", "head": 0}, "heartbeat")) == ["The server is back."]
    run.now += 1.0
    assert requests(run.do(Expired(HeartbeatDue()))) == []     # every 30 s again


def test_a_staying_client_waits_for_its_link_and_says_when_it_is_tried_again():
    run = checking(stay=True)
    assert run.do(Started()) == [Status(Stage.USERNAME, None, 0, None, False)]
    down = run.do(LinkDown("refused", 1.0))
    assert printed(down) == ["Cannot reach the server at 127.0.0.1:4119 (refused).", TYPE_AHEAD]
    assert status(down).retry_at == 1.0
    assert printed(run.do(LinkDown("refused", 3.0))) == []
    up = run.do(LinkUp())
    assert printed(up) == ["The server is back."]
    assert status(up).outage is None
    # a TLS port takes a plain connection too: the name is asked once a probe says it speaks ours
    assert printed(run.answer_probe()) == ["Please enter username:"]


def test_a_staying_script_stops_when_its_link_cannot_be_made_at_the_start():
    run = checking(stay=True, scripted=True)
    run.do(Started())
    assert Exit(1, "cannot reach the server at 127.0.0.1:4119 (refused); the input was not "
                   "read") in run.do(LinkDown("refused", 1.0))


def test_a_staying_client_that_loses_its_link_logged_in_hears_it_at_once():
    run = logged_in(stay=True)
    down = run.do(LinkDown("connection reset", 31.0))
    assert printed(down) == ["Cannot reach the server (connection reset)."]
    assert status(down).retry_at == 15.0        # the heartbeat comes first (15 s: staying)
    up = run.do(LinkUp())
    assert printed(up) == []            # a stopped server's kernel takes connections too
    assert [f["type"] for f in requests(up)] == ["resume"]
    assert printed(run.reply({"type": "ok", "head": 0}, "resume")) == ["The server is back."]


def test_a_login_closed_unanswered_goes_again_with_backoff_though_the_server_is_seen():
    """(a trial's server took the look and closed the login without a word: the login, its
    password with it, went every second for as long as it ran)"""
    from client_events import LoginRetry
    run = Run(check_server=True)
    run.do(Started())
    run.answer_probe()
    run.type("alice")
    run.reply({"type": "ok"})
    run.type("pw")
    waits = []
    for _ in range(4):
        run.fail("the connection closed before a reply", kind="login")
        run.do(Expired(ProbeDue()))
        seen = run.answer_probe()
        armed = [a.at - run.now for a in seen if isinstance(a, Arm) and a.key == LoginRetry()]
        waits.append(armed[0] if armed else 0.0)
        if armed:
            assert [r for r in requests(seen) if r["type"] == "login"] == []
            run.do(Expired(LoginRetry()))
        assert run.last("login") is not None
    assert waits == [0.0, 1.0, 2.0, 4.0]
    run.reply({"type": "welcome", "user": "alice", "token": "t1", "proof": "p1"}, kind="login")
    assert run.client.login_backoff_s == 0.0            # (an answer starts it again)
