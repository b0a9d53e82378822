"""Quotas: what may wait for one recipient and in all is bounded, and past a bound the sender
hears so (inbox_full, store_full), never a silent drop; and what the client does with those and
with `unavailable`. Events in, actions out."""
import pytest

from chat_server import Settings
from client_events import Arm, OutboxRetry, Expired
from client_helpers import err, logged_in, printed, requests
from core_helpers import ACCOUNTS, delivered_frames, login, make_server, replies
from server_events import Acked, Deliver, DeliverEach, Request


def say(server, text="hi", to="bob", mid=None, now=0.0):
    frame = {"type": "message", "token": "s1", "to": to, "text": text}
    if mid is not None:
        frame["mid"] = mid
    return replies(server.handle(Request(2, frame, "h"), now))[0]


def test_past_the_inbox_limit_the_sender_is_told_and_a_retry_still_gets_its_yes():
    server, store = make_server(Settings(inbox_messages=2, sender_share=1))
    login(server, "alice", port=5001)
    assert say(server, mid="m-1")["type"] == "ok" and say(server, mid="m-2")["type"] == "ok"
    refused = say(server, mid="m-3")
    assert refused["code"] == "inbox_full" and "bob" in refused["message"]
    assert say(server, mid="m-2") == {"type": "ok", "stored": True}     # the first reply again
    assert say(server, mid="m-1") == {"type": "ok", "repeat": True}     # an older one: taken
    assert say(server, to="carol")["type"] == "ok"                      # others are not full
    assert store.count_waiting("bob") == 2


def test_the_inbox_limit_counts_bytes_too_and_acknowledgements_make_room():
    server, store = make_server(Settings(inbox_bytes=200, sender_share=1))
    login(server, "alice", port=5001)
    assert say(server, "x" * 100)["type"] == "ok"
    assert say(server, "x" * 100)["code"] == "inbox_full"
    bob = login(server, "bob", port=5002, conn=3)
    seq = [f["seq"] for f in delivered_frames(bob) if f["type"] == "message"][-1]
    server.handle(Acked("s4", seq), 1.0)
    assert say(server, "x" * 100, now=1.0)["type"] == "ok"


def test_past_the_store_limit_everyone_is_told():
    server, _ = make_server(Settings(store_messages=2, sender_share=1))
    login(server, "alice", port=5001)
    assert say(server, to="bob")["type"] == "ok" and say(server, to="carol")["type"] == "ok"
    assert say(server, to="bob")["code"] == "store_full"


def test_acknowledgements_make_room_in_a_full_store_too():
    """The message quota counts deliveries waiting, freed by each acknowledgement; the byte
    quota what the disk holds, freed once a record's every delivery is acknowledged and the
    record deleted (at the next compaction: freed at the acknowledgement, a trial's store took
    2.7 times its quota on a small disk, and filled it)."""
    server, store = make_server(Settings(store_messages=2, sender_share=1))
    login(server, "alice", port=5001)
    assert say(server, to="bob")["type"] == "ok" and say(server, to="bob")["type"] == "ok"
    assert say(server, to="carol")["code"] == "store_full"
    store.commit()
    bob = login(server, "bob", port=5002, conn=3)
    seqs = [f["seq"] for f in delivered_frames(bob) if f["type"] == "message"]
    server.handle(Acked("s4", seqs[0]), 1.0)
    assert say(server, to="carol", now=1.0)["type"] == "ok"
    assert say(server, to="carol", now=1.0)["code"] == "store_full"
    on_disk = store.total[1]
    server.handle(Acked("s4", seqs[1]), 1.0)
    assert store.total[1] == on_disk        # bob's record, passed, is still on the disk ...
    store.commit(acks_too=True)
    assert store.total[1] < on_disk         # ... until the compaction deletes it
    assert say(server, to="carol", now=1.0)["type"] == "ok"
    assert store.count_all_waiting() == 2


def test_one_sender_may_fill_only_its_share_of_an_absent_users_inbox_and_others_still_can():
    """A trial's script filled an absent user's whole inbox in a minute, and then nobody else
    could leave them a word: one sender may leave a tenth of it."""
    server, store = make_server(Settings(inbox_messages=20))
    login(server, "alice", port=5001)
    login(server, "carol", port=5003, conn=3)           # (token s3)
    assert say(server)["type"] == "ok" and say(server)["type"] == "ok"
    refused = say(server)
    assert refused == {"type": "error", "code": "inbox_full", "share": True, "message":
                       "you have left bob as many messages as one sender may until they read them"}
    frame = {"type": "message", "token": "s3", "to": "bob", "text": "from carol"}
    assert replies(server.handle(Request(3, frame, "h"), 0.0))[0]["type"] == "ok"
    assert store.count_waiting("bob") == 3


def test_the_share_of_an_inbox_counts_bytes_too():
    server, _ = make_server(Settings(inbox_bytes=3000))       # 300 bytes a sender
    login(server, "alice", port=5001)
    assert say(server, "x" * 150)["type"] == "ok"           # 207 bytes kept
    assert say(server, "x" * 150)["code"] == "inbox_full"
    assert say(server, "x")["type"] == "ok"                 # 58 more: they fit


def test_the_recipients_login_delivers_what_was_left_and_the_share_counts_from_nothing_again():
    server, store = make_server(Settings(inbox_messages=20))
    login(server, "alice", port=5001)
    assert say(server)["type"] == "ok" and say(server)["type"] == "ok"
    assert say(server)["code"] == "inbox_full"
    bob = login(server, "bob", port=5002, conn=3)           # (token s3, proof s4)
    seqs = [f["seq"] for f in delivered_frames(bob) if f["type"] == "message"]
    assert len(seqs) == 2
    server.handle(Acked("s4", seqs[-1]), 1.0)
    server.handle(Request(3, {"type": "logout", "token": "s3"}, "h"), 1.0)
    assert say(server, now=1.0)["type"] == "ok" and say(server, now=1.0)["type"] == "ok"
    assert say(server, now=1.0)["code"] == "inbox_full"
    assert store.count_waiting("bob") == 2


def test_what_a_reading_client_has_on_its_way_is_not_taken_for_a_crowd():
    """A fan-in of 32 senders keeps over a thousand messages on their way to one reader: the
    counting begins past twice the delivery window, if that is more than a share."""
    server, _ = make_server(Settings(inbox_messages=20, delivery_window=3))
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)
    assert all(say(server)["type"] == "ok" for _ in range(6 + 2))   # 6 wait, then 2 counted
    assert say(server)["code"] == "inbox_full"


def test_to_an_online_user_who_reads_no_share_counts():
    server, _ = make_server(Settings(inbox_messages=20, delivery_window=1))    # a share: 2
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)                 # (token s3, proof s4)
    for n in range(5):
        actions = server.handle(Request(2, {"type": "message", "token": "s1", "to": "bob",
                                            "text": f"m{n}"}, "h"), 0.0)
        assert replies(actions)[0]["type"] == "ok"
        seq = [f["seq"] for f in delivered_frames(actions) if f["type"] == "message"][-1]
        server.handle(Acked("s4", seq), 0.0)


@pytest.mark.parametrize("stays", [False, True], ids=["listening-port", "staying"])
def test_to_an_online_user_who_does_not_read_each_sender_may_add_a_share_and_no_more(stays):
    """A user logged in whose listening port the server cannot reach (behind NAT) acknowledges
    nothing: a trial's sender filled that inbox as it had an absent user's."""
    server, store = make_server(Settings(inbox_messages=20, delivery_window=1))
    login(server, "alice", port=5001)
    if stays:
        server.handle(Request(3, {"type": "login", "user": "bob", "password": ACCOUNTS["bob"],
                                  "stay": True}, "127.0.0.1"), 0.0)     # (token s3, no proof)
        ack = lambda seq: server.handle(Request(3, {"type": "ack", "seq": seq}, "h"), 1.0)
    else:
        login(server, "bob", port=5002, conn=3)                         # (token s3, proof s4)
        ack = lambda seq: server.handle(Acked("s4", seq), 1.0)
    carol = "s5" if not stays else "s4"
    login(server, "carol", port=5003, conn=4)
    first = server.handle(Request(2, {"type": "message", "token": "s1", "to": "bob",
                                      "text": "hi"}, "h"), 0.0)
    for _ in range(3):                                      # a share waits, then alice's 2
        assert say(server)["type"] == "ok"
    assert say(server)["code"] == "inbox_full"
    frame = {"type": "message", "token": carol, "to": "bob", "text": "from carol"}
    assert replies(server.handle(Request(4, frame, "h"), 0.0))[0]["type"] == "ok"
    # bob reads everything, one at a time (a window of 1): the count ends, and alice may
    # write again
    seq = numbered(first)[0]["seq"]                         # the first, on its way to him
    while seq is not None:
        delivered = numbered(ack(seq))
        seq = delivered[-1]["seq"] if delivered else None
    assert store.count_waiting("bob") == 0
    # (the same again: a crowd, then alice's share, counted from nothing)
    assert [say(server, now=1.0)["type"] for _ in range(5)] == ["ok"] * 4 + ["error"]


def test_a_share_counts_on_while_bytes_enough_wait_though_few_messages_do():
    """A re-attack's reader acknowledged one large message now and then: fewer messages than a
    crowd waited, but megabytes, and its sender was given a new share at each, until nobody
    else could leave that reader a word."""
    server, store = make_server(Settings(inbox_bytes=10_000, delivery_window=1,
                                         delivery_window_bytes=100))    # a crowd: 1,000 bytes
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)                 # (token s3, proof s4)
    big = "x" * 400
    first = server.handle(Request(2, {"type": "message", "token": "s1", "to": "bob",
                                      "text": big}, "h"), 0.0)
    kept = 1
    while say(server, big)["type"] == "ok":                 # a crowd, then alice's share
        kept += 1
    assert kept < 8                                         # (1,000 bytes and 1,000 more)
    server.handle(Acked("s4", numbered(first)[0]["seq"]), 1.0)      # bob takes one
    assert store.count_waiting("bob") == kept - 1
    refused = say(server, big, now=1.0)                     # bytes enough still wait for bob
    assert refused["code"] == "inbox_full" and refused["share"] is True


def test_broadcasts_to_an_online_user_who_does_not_read_count_in_the_senders_share():
    """A trial's sender filled such a user's inbox with 10,000 broadcasts: nobody else could
    leave them a word, nor could anyone once they logged out."""
    server, store = make_server(Settings(inbox_messages=20, delivery_window=1))  # a share: 2
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)                 # (token s3, proof s4): no acks
    login(server, "carol", port=5003, conn=4)               # (token s5, proof s6): reads
    said = []
    for n in range(8):
        actions = server.handle(Request(2, {"type": "broadcast", "token": "s1",
                                            "text": f"b{n}"}, "h"), 0.0)
        said.append(replies(actions)[0])
        for frame in numbered(actions):
            if frame.get("text") == f"b{n}":
                server.handle(Acked("s6", frame["seq"]), 0.0)      # carol takes each
    # a share waits for bob (2), then alice's own share (2) counts, and no more
    assert [reply.get("full", 0) for reply in said] == [0] * 4 + [1] * 4
    assert store.count_waiting("bob") == 4 and store.count_waiting("carol") == 0
    frame = {"type": "message", "token": "s5", "to": "bob", "text": "from carol"}
    assert replies(server.handle(Request(4, frame, "h"), 0.0))[0]["type"] == "ok"


def numbered(actions):
    """The numbered frames delivered by `actions`, to a listening port or a staying client."""
    return [action.frame for action in actions
            if isinstance(action, (Deliver, DeliverEach)) and "seq" in action.frame]


def test_one_sender_may_fill_only_its_share_of_the_store_for_all_absent_users_together():
    server, _ = make_server(Settings(store_messages=20))     # 2 a sender, in all
    login(server, "alice", port=5001)
    assert say(server, to="bob")["type"] == "ok" and say(server, to="carol")["type"] == "ok"
    refused = say(server, to="bob")
    assert refused["code"] == "store_full" and refused["share"] is True
    assert refused["message"] == ("you have left users who are away as many messages as one "
                                  "sender may until they read them")
    login(server, "carol", port=5003, conn=3)           # what waited for carol goes out
    assert say(server, to="bob")["type"] == "ok"


def test_a_broadcast_counts_once_on_disk_and_once_per_recipient_in_the_message_quota():
    server, store = make_server(Settings(store_messages=3))
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)
    login(server, "carol", port=5003, conn=4)
    broadcast = lambda: replies(server.handle(Request(2, {
        "type": "broadcast", "token": "s1", "text": "all"}, "h"), 0.0))[0]
    assert broadcast()["type"] == "ok"
    assert store.total[0] == 1 and store.count_all_waiting() == 2
    assert broadcast()["code"] == "store_full"          # 2 + 2 deliveries would pass 3


def test_a_broadcast_says_how_many_online_users_were_too_full_to_take_it():
    server, _ = make_server(Settings(inbox_messages=1, delivery_window=1))
    login(server, "alice", port=5001)
    login(server, "bob", port=5002, conn=3)
    login(server, "carol", port=5003, conn=4)
    say(server, to="bob")                   # bob's one place is taken (he has not acked)
    actions = server.handle(Request(2, {"type": "broadcast", "token": "s1", "text": "all"},
                                    "h"), 0.0)
    assert replies(actions) == [{"type": "ok", "skipped": 0, "full": 1}]
    assert [(a.frame["type"], a.address[1]) for a in actions if hasattr(a, "address")] == [
        ("broadcast", 5003)]


def test_while_the_store_cannot_commit_nothing_new_is_written_and_logins_wait():
    server, store = make_server()
    login(server, "alice", port=5001)
    store.failing = "database or disk is full"
    assert say(server)["code"] == "unavailable"
    assert replies(login(server, "bob", port=5002, conn=3))[0]["code"] == "unavailable"
    heartbeat = server.handle(Request(2, {"type": "heartbeat", "token": "s1"}, "h"), 0.0)
    assert replies(heartbeat) == [{"type": "ok", "head": 0}]
    logs = [a.text for a in server.handle(Request(2, {"type": "message", "token": "s1",
                                                      "to": "bob", "text": "x"}, "h"), 1.0)
            if hasattr(a, "text")]
    assert logs == []                       # the outage was logged once


# -- the client ----------------------------------------------------------------------------

def test_unavailable_keeps_the_message_says_so_once_and_tries_again_with_backoff():
    run = logged_in()
    run.type("message bob hi")
    first = run.reply(err("unavailable", seconds=1))
    assert printed(first) == ["The server cannot store messages just now; yours is kept and "
                              "sent again until it can."]
    assert Arm(OutboxRetry(), 1.0) in first
    again = requests(run.do(Expired(OutboxRetry())))
    assert again[0]["mid"] == "c-1"
    second = run.reply(err("unavailable", seconds=1))
    assert printed(second) == [] and Arm(OutboxRetry(), 2.0) in second    # quiet, doubling
    run.do(Expired(OutboxRetry()))
    assert printed(run.reply({"type": "ok", "stored": False})) == []
    assert run.client.outbox.entries == type(run.client.outbox.entries)()


def test_full_inboxes_and_a_full_store_are_told_in_the_users_words():
    run = logged_in()
    run.type("message bob hi")
    assert printed(run.reply(err("inbox_full"))) == [
        "bob has too many messages waiting; yours was not sent."]
    run.type("message bob hi")
    assert printed(run.reply(err("inbox_full", share=True))) == [
        "You have left bob as many messages as one sender may until they read them; yours was "
        "not sent."]
    run.type("message bob hi")
    assert printed(run.reply(err("store_full", share=True))) == [
        "You have left users who are away as many messages as one sender may until they read "
        "them; yours was not sent."]
    run.type("broadcast all")
    assert printed(run.reply({"type": "ok", "skipped": 0, "full": 2})) == [
        "Your message could not be delivered to 2 users online, who have too many messages "
        "waiting."]
