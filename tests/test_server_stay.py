"""The server core with staying clients: login with stay, deliveries on the client's connection,
Closed, resume, and the no_port refusal. Events in, actions out; no sockets."""
from core_helpers import ACCOUNTS, logs, make_server, replies
from server import Settings
from server_events import (Arm, Closed, Deliver, DeliverEach, DeliverRun, Expired, IdleCheck, Log,
                           Request)

HOST = "127.0.0.1"


def stay_login(server, user, conn, now=0.0, **fields):
    frame = {"type": "login", "user": user, "password": ACCOUNTS[user], "stay": True, **fields}
    return server.handle(Request(conn, frame, HOST), now)


def short_login(server, user, conn, port, now=0.0):
    frame = {"type": "login", "user": user, "password": ACCOUNTS[user], "port": port}
    return server.handle(Request(conn, frame, HOST), now)


def ask(server, conn, frame, now=0.0):
    return server.handle(Request(conn, frame, HOST), now)


def pushes(actions):
    """(conn, frame) of every delivery on a staying connection (a DeliverEach is one each, a
    DeliverRun one for each of its frames on each)."""
    return [(conn, frame) for a in actions
            for conn in (a.conns if isinstance(a, (DeliverEach, DeliverRun)) else [a.conn]
                         if isinstance(a, Deliver) and a.conn is not None else [])
            for frame in (a.frames if isinstance(a, DeliverRun) else [a.frame])]


def say(server, token, to, text, conn=9, now=0.0):
    return ask(server, conn, {"type": "message", "token": token, "to": to, "text": text}, now)


def test_a_staying_login_without_a_port_is_reached_on_its_connection():
    server, _ = make_server()
    actions = stay_login(server, "alice", conn=1)
    assert replies(actions) == [{"type": "welcome", "user": "alice", "token": "s1",
                                 "store": "store1", "head": 0, "waiting": 0, "timeout": 31}]
    assert logs(actions) == ["alice logged in from 127.0.0.1, staying connected"]
    short_login(server, "bob", conn=2, port=5002)
    sent = say(server, "s2", "alice", "hi")
    assert sent[1:] == [DeliverEach([1], {"type": "message", "from": "bob", "text": "hi",
                                          "seq": 1})]


def test_presence_reaches_each_user_by_its_own_way():
    server, _ = make_server()
    stay_login(server, "alice", conn=1, port=6001)
    actions = short_login(server, "bob", conn=2, port=5002)
    assert pushes(actions) == [(1, {"type": "presence", "user": "bob", "online": True})]
    actions = stay_login(server, "carol", conn=3)
    assert [(a.address, a.conn) for a in actions if isinstance(a, Deliver)] == [
        ((HOST, 5002), None)]                                   # to bob's listening port
    assert pushes(actions) == [(1, {"type": "presence", "user": "carol", "online": True})]
    assert [a.conns for a in actions if isinstance(a, DeliverEach)] == [[1]]   # one for all


def test_stay_must_be_a_boolean_and_without_it_the_port_is_required():
    server, _ = make_server()
    assert replies(stay_login(server, "alice", conn=1, stay="yes"))[0]["code"] == "bad_field"
    no_port = ask(server, 1, {"type": "login", "user": "alice", "password": ACCOUNTS["alice"]})
    assert replies(no_port)[0]["code"] == "bad_field"
    bad_port = stay_login(server, "alice", conn=1, port=0)
    assert replies(bad_port)[0]["code"] == "bad_field"
    assert server.online_users() == []


def test_a_user_without_a_port_is_asked_but_agreeing_gives_no_address():
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    asked = ask(server, 2, {"type": "getaddress", "token": "s2", "user": "alice"})
    assert replies(asked) == [{"type": "ok"}]
    assert pushes(asked) == [(1, {"type": "consent_request", "from": "bob"})]
    agreed = ask(server, 1, {"type": "consent", "token": "s1", "user": "bob", "agree": True})
    assert replies(agreed) == [{"type": "ok", "no_port": True}]        # no key: nothing to prove
    assert [d.frame for d in agreed if isinstance(d, Deliver)] == [
        {"type": "address_unavailable", "user": "alice"}]
    # a client without a port may still ask, and hears the answer on its connection
    asked = ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    assert replies(asked) == [{"type": "ok"}]
    answered = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": True})
    assert pushes(answered) == [(1, {"type": "address", "user": "bob", "host": HOST,
                                     "port": 5002, "key": "s5"})]
    # its agreement without a port ends as any grant does: told (a trial's asker went on
    # hearing "no listening port" after alice came back with one)
    left = ask(server, 1, {"type": "logout", "token": "s1"})
    assert {"type": "address_revoked", "user": "alice"} in [
        d.frame for d in left if isinstance(d, Deliver) and d.conn is None]


def test_consent_questions_and_refusals_travel_on_staying_connections():
    server, _ = make_server()
    stay_login(server, "alice", conn=1, port=6001)
    stay_login(server, "bob", conn=2, port=6002)
    asked = ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    assert pushes(asked) == [(2, {"type": "consent_request", "from": "alice"})]
    refused = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False})
    assert pushes(refused) == [(1, {"type": "address_refused", "user": "bob"})]


def test_a_closed_connection_detaches_the_session_and_messages_wait_for_the_resume():
    server, store = make_server()
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    assert pushes(say(server, "s2", "alice", "one")) != []
    assert logs(server.handle(Closed(1), 1.0)) == [
        "alice's staying connection closed; the session waits for a resume"]
    assert server.online_users() == ["alice", "bob"]       # still on, until its time-out
    later = say(server, "s2", "alice", "two", now=2.0)
    assert replies(later) == [{"type": "ok", "stored": False}] and pushes(later) == []
    assert store.count_waiting("alice") == 2
    # a notice to a detached session lapses, as one to an unreachable port does
    assert pushes(ask(server, 2, {"type": "logout", "token": "s2"}, 3.0)) == []
    resumed = ask(server, 7, {"type": "resume", "token": "s1"}, 4.0)
    assert replies(resumed) == [{"type": "ok", "head": 2}]
    assert logs(resumed) == ["alice resumed the session on connection 7"]
    assert [(conn, f["text"], f["seq"]) for conn, f in pushes(resumed)] == [
        (7, "one", 1), (7, "two", 2)]
    assert ask(server, 7, {"type": "ack", "seq": 2}, 5.0) == []     # acks on its connection
    assert store.count_waiting("alice") == 0


def test_a_session_with_nothing_on_its_way_holds_no_window_but_what_its_client_took():
    """An idle user's usual state: its window is let go once everything sent is acknowledged
    (delivery.settle), and made again, from the number acknowledged, for the next message."""
    server, store = make_server()
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    alice = server.carried[1]
    assert alice.window is None
    assert [f["seq"] for _, f in pushes(say(server, "s2", "alice", "one"))] == [1]
    assert [f["seq"] for _, f in pushes(say(server, "s2", "alice", "two"))] == [2]
    assert ask(server, 1, {"type": "ack", "seq": 1}) == [] and alice.window.sent == [2]
    assert ask(server, 1, {"type": "ack", "seq": 2}) == []
    assert alice.window is None and alice.acked == 2 and store.count_waiting("alice") == 0
    assert ask(server, 1, {"type": "ack", "seq": 1}) == []         # old news, still
    assert alice.window is None and alice.acked == 2
    assert [(f["text"], f["seq"]) for _, f in pushes(say(server, "s2", "alice", "three"))] == [
        ("three", 3)]
    assert alice.window.acked == 2 and alice.window.sent == [3]
    assert ask(server, 1, {"type": "ack", "seq": 3}) == [] and alice.window is None
    assert alice.acked == 3


def test_a_login_with_messages_waiting_keeps_its_window_until_they_are_taken():
    server, store = make_server()
    short_login(server, "bob", conn=2, port=5002)
    say(server, "s1", "alice", "while you were out")
    actions = stay_login(server, "alice", conn=1)
    assert [f["text"] for _, f in pushes(actions)] == ["while you were out"]
    alice = server.carried[1]
    assert alice.window.sent == [1]
    assert server.handle(Closed(1), 1.0) != []            # not acknowledged: it waits
    resumed = ask(server, 7, {"type": "resume", "token": "s3"}, 2.0)
    assert [f["seq"] for _, f in pushes(resumed)] == [1]
    assert ask(server, 7, {"type": "ack", "seq": 1}, 3.0) == [] and alice.window is None


def test_resume_moves_the_session_and_the_old_connection_closing_later_changes_nothing():
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    ask(server, 7, {"type": "resume", "token": "s1"})        # a half-open conn 1 not yet noticed
    assert server.handle(Closed(1), 1.0) == []
    assert [conn for conn, _ in pushes(say(server, "s2", "alice", "hi", now=2.0))] == [7]
    assert server.handle(Closed(2), 3.0) == []                  # a short connection


def test_resume_needs_a_live_session():
    server, _ = make_server()
    assert replies(ask(server, 1, {"type": "resume", "token": "nope"}))[0]["code"] == "no_session"
    assert replies(ask(server, 1, {"type": "resume"}))[0]["code"] == "no_session"


def test_a_session_logged_in_without_stay_takes_no_resume_and_keeps_its_port():
    server, _ = make_server()
    short_login(server, "alice", conn=1, port=5001)
    short_login(server, "bob", conn=2, port=5002)
    refused = replies(ask(server, 3, {"type": "resume", "token": "s1"}))
    assert refused[0]["code"] == "bad_field" and "stay" in refused[0]["message"]
    server.handle(Closed(3), 1.0)
    assert [a.address for a in say(server, "s3", "alice", "hi", now=2.0)
            if isinstance(a, Deliver)] == [(HOST, 5001)]


def test_a_new_login_elsewhere_tells_the_old_staying_connection():
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    again = stay_login(server, "alice", conn=2, now=1.0)
    assert pushes(again) == [(1, {"type": "logged_out", "reason": "elsewhere"})]
    assert server.handle(Closed(1), 2.0) == []                  # the old session is over
    assert logs(server.handle(Closed(2), 3.0)) != []


def test_logging_in_again_as_the_same_user_on_the_same_connection_is_refused_too():
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    again = stay_login(server, "alice", conn=1, now=1.0)
    assert [frame["code"] for frame in replies(again)] == ["already_logged_in"]
    assert pushes(again) == [] and server.online_users() == ["alice"]
    assert replies(ask(server, 1, {"type": "heartbeat", "token": "s1"}, 2.0))[0]["type"] == "ok"


def test_a_detached_session_times_out_and_its_messages_wait_for_the_next_login():
    server, store = make_server(Settings(timeout_s=31.0))
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    server.handle(Closed(1), 1.0)
    say(server, "s2", "alice", "kept", now=2.0)
    ask(server, 2, {"type": "heartbeat", "token": "s2"}, 30.0)
    ended = server.handle(Expired(IdleCheck()), 31.0)
    assert "alice timed out after 31 s without a request" in logs(ended)
    assert server.online_users() == ["bob"] and store.count_waiting("alice") == 1
    back = stay_login(server, "alice", conn=4, now=40.0)
    assert [(c, f["text"], f.get("offline")) for c, f in pushes(back) if "seq" in f] == [
        (4, "kept", None)]
    assert not any(isinstance(a, Log) and "elsewhere" in a.text for a in back)


def test_what_a_timed_out_sessions_client_acknowledges_on_its_connection_is_not_sent_again():
    """(a trial's client, stopped past its time-out, showed 50 messages its connection had
    brought, acknowledged them after its session ended, and showed them again at its next
    login)"""
    server, store = make_server(Settings(timeout_s=31.0))
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    sent = [f["seq"] for text in ("one", "two", "three")
            for _, f in pushes(say(server, "s2", "alice", text, now=1.0))]
    ask(server, 2, {"type": "heartbeat", "token": "s2"}, 30.0)
    server.handle(Expired(IdleCheck()), 31.0)           # alice's client stopped: timed out
    assert server.online_users() == ["bob"] and store.count_waiting("alice") == 3
    before = server.refusals
    ask(server, 1, {"type": "ack", "seq": sent[1]}, 40.0)   # it goes on, and acknowledges
    assert server.refusals == before                    # (not counted toward a flood)
    ask(server, 1, {"type": "ack", "seq": sent[1]}, 40.0)   # old news: counted, as any is
    assert server.refusals == before + 1
    back = stay_login(server, "alice", conn=4, now=41.0)
    assert [f["text"] for _, f in pushes(back) if "seq" in f] == ["three"]
    ask(server, 1, {"type": "ack", "seq": sent[2]}, 42.0)   # a new session's: not moved
    assert [f["text"] for _, f in pushes(stay_login(server, "alice", conn=5, now=43.0))
            if "seq" in f] == ["three"]
    assert 1 in server._sessions.acks_after_end
    server.handle(Closed(1), 44.0)                      # kept until its connection closes
    assert 1 not in server._sessions.acks_after_end     # (a reviewer's 2,000 were kept)


def test_an_ack_past_what_went_out_on_an_ended_sessions_connection_passes_nothing_more():
    server, store = make_server(Settings(timeout_s=31.0))
    stay_login(server, "alice", conn=1)
    short_login(server, "bob", conn=2, port=5002)
    first = [f["seq"] for _, f in pushes(say(server, "s2", "alice", "one", now=1.0))][0]
    ask(server, 2, {"type": "heartbeat", "token": "s2"}, 30.0)
    server.handle(Expired(IdleCheck()), 31.0)
    say(server, "s2", "alice", "sent while away", now=32.0)
    ask(server, 1, {"type": "ack", "seq": first + 10 ** 6}, 33.0)
    back = stay_login(server, "alice", conn=4, now=34.0)
    assert [f["text"] for _, f in pushes(back) if "seq" in f] == ["sent while away"]


def test_an_ended_sessions_token_says_why_it_ended():
    """(a client stopped when it was told missed the notice, and said its session had timed
    out when another login had ended it)"""
    server, _ = make_server(Settings(timeout_s=31.0))
    short_login(server, "alice", conn=1, port=5001)
    short_login(server, "alice", conn=2, port=5002)             # elsewhere: s3 ends s1
    refused = replies(ask(server, 3, {"type": "heartbeat", "token": "s1"}, 1.0))[0]
    assert (refused["code"], refused.get("reason")) == ("no_session", "elsewhere")
    server.handle(Expired(IdleCheck()), 31.0)                   # s3 times out
    refused = replies(ask(server, 3, {"type": "heartbeat", "token": "s3"}, 41.0))[0]
    assert (refused["code"], refused.get("reason")) == ("no_session", "timed_out")
    stay_login(server, "bob", conn=4, now=42.0)
    ask(server, 4, {"type": "logout", "token": "s5"}, 43.0)     # its own: nothing to say
    assert "reason" not in replies(ask(server, 3, {"type": "heartbeat", "token": "s5"}, 44.0))[0]
    made_up = replies(ask(server, 3, {"type": "heartbeat", "token": "nope"}, 45.0))[0]
    assert made_up["code"] == "no_session" and "reason" not in made_up


def test_one_users_many_ended_sessions_do_not_push_out_anothers_reason():
    """(one account's 4,200 logins pushed every other user's reason out of a shared list)"""
    server, _ = make_server()
    short_login(server, "bob", conn=1, port=5001)
    short_login(server, "bob", conn=2, port=5002)              # s1 ended: elsewhere
    for n in range(4200):                                       # (paced: no slow_down)
        welcome = replies(short_login(server, "alice", conn=10 + n, port=6000 + n % 1000,
                                      now=float(n)))[0]
        assert welcome["type"] == "welcome"
    refused = replies(ask(server, 3, {"type": "heartbeat", "token": "s1"}, 4200.0))[0]
    assert refused.get("reason") == "elsewhere"


def test_a_second_login_on_a_staying_connection_is_refused_and_the_first_goes_on():
    """A trial's: the second login took the connection, welcomed with a presence notice about
    itself, and left the first user online to everyone, its token good, until its time-out."""
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    again = stay_login(server, "bob", conn=1)
    assert [frame["code"] for frame in replies(again)] == ["already_logged_in"]
    assert server.online_users() == ["alice"] and pushes(again) == []
    short_login(server, "carol", conn=2, port=5002)
    assert pushes(say(server, "s2", "alice", "still here")) == [
        (1, {"type": "message", "from": "carol", "text": "still here", "seq": 1})]
    ask(server, 1, {"type": "logout", "token": "s1"})
    assert [frame["type"] for frame in replies(stay_login(server, "bob", conn=1))] == ["welcome"]


def test_another_sessions_resume_on_a_staying_connection_is_refused_too():
    """A trial's resume of bob's session on alice's connection left alice online to everyone
    and unreachable: her messages were answered as delivered, and went nowhere."""
    server, _ = make_server()
    stay_login(server, "alice", conn=1)
    stay_login(server, "bob", conn=2)
    refused = ask(server, 1, {"type": "resume", "token": "s2"})
    assert [frame["code"] for frame in replies(refused)] == ["already_logged_in"]
    short_login(server, "carol", conn=3, port=5003)
    assert [c for c, _ in pushes(say(server, "s3", "alice", "still yours", conn=4))] == [1]
    assert [c for c, _ in pushes(say(server, "s3", "bob", "and yours", conn=4))] == [2]
    assert replies(ask(server, 1, {"type": "resume", "token": "s1"}))[0]["type"] == "ok"


def _granted(server):
    """alice (conn 1) asked bob (conn 2), who said yes: alice holds bob's key."""
    stay_login(server, "alice", conn=1, port=6001)
    stay_login(server, "bob", conn=2, port=6002)
    ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    agreed = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": True})
    assert [frame["type"] for _, frame in pushes(agreed)] == ["address"]


def test_a_no_to_a_second_question_takes_back_the_first_yes():
    # (a trial's user said N to a second getaddress and went on getting the asker's private
    # messages: the yes given before stood, and nothing short of a block could end it)
    server, _ = make_server()
    _granted(server)
    ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    refused = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False})
    assert replies(refused) == [{"type": "ok", "revoked": True, "refused": True}]
    assert pushes(refused) == [(1, {"type": "address_refused", "user": "bob"}),
                               (1, {"type": "address_revoked", "user": "bob",
                                    "taken_back": True})]
    assert logs(refused) == ["bob refused alice its address, and took back its consent to "
                             "alice"]


def test_a_no_with_no_question_waiting_takes_back_a_yes_and_only_once():
    server, _ = make_server()
    _granted(server)
    taken = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False})
    assert replies(taken) == [{"type": "ok", "revoked": True}]
    assert pushes(taken) == [(1, {"type": "address_revoked", "user": "bob",
                                  "taken_back": True})]
    assert logs(taken) == ["bob took back its consent to alice"]
    again = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False})
    assert replies(again)[0]["code"] == "no_request" and pushes(again) == []
    # and a yes with no question waiting is no way to give a key nobody asked for
    yes = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": True})
    assert replies(yes)[0]["code"] == "no_request" and pushes(yes) == []


def test_a_no_to_a_first_question_is_a_plain_refusal():
    server, _ = make_server()
    stay_login(server, "alice", conn=1, port=6001)
    stay_login(server, "bob", conn=2, port=6002)
    ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    refused = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False})
    assert replies(refused) == [{"type": "ok"}]
    assert pushes(refused) == [(1, {"type": "address_refused", "user": "bob"})]


def test_a_question_to_a_staying_user_between_connections_is_said_unreached_at_once():
    # (it lapsed unseen a minute later: its asker was told to wait for an answer)
    server, _ = make_server()
    stay_login(server, "alice", conn=1, port=6001)
    stay_login(server, "bob", conn=2, port=6002)
    server.handle(Closed(2), 1.0)
    asked = ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"}, now=2.0)
    assert replies(asked) == [{"type": "ok"}]
    assert pushes(asked) == [(1, {"type": "address_lapsed", "user": "bob", "unreached": True})]
    assert not [a for a in asked if isinstance(a, Arm)]        # nothing left to lapse
    again = ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"}, now=3.0)
    assert replies(again) == [{"type": "ok"}]           # not already_asked


def test_an_address_for_a_staying_asker_between_connections_ends_the_consent_at_once():
    server, _ = make_server()
    stay_login(server, "alice", conn=1, port=6001)
    stay_login(server, "bob", conn=2, port=6002)
    ask(server, 1, {"type": "getaddress", "token": "s1", "user": "bob"})
    server.handle(Closed(1), 1.0)
    agreed = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": True},
                 now=2.0)
    assert pushes(agreed) == [(2, {"type": "consent_revoked", "user": "alice",
                                   "unreached": True})]
    taken = ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False},
                now=3.0)
    assert replies(taken)[0]["code"] == "no_request"        # the grant ended already
    # the asker is told at its resume (a trial's, never told, was told to wait for the
    # agreement that had come): once, and the answer to a refused question likewise
    back = ask(server, 3, {"type": "resume", "token": "s1"}, now=4.0)
    assert pushes(back) == [(3, {"type": "address_lapsed", "user": "bob", "lost": True})]
    assert pushes(ask(server, 3, {"type": "heartbeat", "token": "s1"}, now=5.0)) == []
    ask(server, 3, {"type": "getaddress", "token": "s1", "user": "bob"}, now=6.0)
    server.handle(Closed(3), 7.0)
    ask(server, 2, {"type": "consent", "token": "s2", "user": "alice", "agree": False}, now=8.0)
    back = ask(server, 4, {"type": "resume", "token": "s1"}, now=9.0)
    assert pushes(back) == [(4, {"type": "address_refused", "user": "bob"})]
