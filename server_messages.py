"""The server core's messages and broadcasts: a request checked, kept in the store once for all
its recipients (within the quotas and each sender's share), answered, and offered to the
recipients' windows (reach.py); a retry answered from its sender's counter, never kept twice;
and the usual next message of a run, taken its own short way.

`Messages` is ChatServer's base class (chat_server.py): it uses the core's store, settings,
rate limits (`_rate_limited`, `_user_limit`), shares, sessions (`_users`), the run under way
(`run`, `_yeses`), its `_account_field` and `_writable`, and reach.py's `_keep_and_deliver`,
`_keep_in_run` and `_run_deliveries`.
"""
import protocol
from protocol import FrameError
from senders import LAST, NEW, TOO_OLD
from server_events import Replies, Reply
from server_replies import Refused, reply_to
from storage import StoreUnavailable


def _share_full(over, recipient):
    """The refusal of a message that would overfill its sender's share (shares.py): of what
    may wait for `recipient` ("inbox"), or for all such users ("store")."""
    if over == "inbox":
        return Refused("inbox_full", f"you have left {recipient} as many messages as one sender "
                                     f"may until they read them", share=True)
    return Refused("store_full", "you have left users who are away as many messages as one "
                                 "sender may until they read them", share=True)


class Messages:
    """Messages and broadcasts, for ChatServer (see the module)."""

    def _message(self, session, request, frame_id, now):
        frame = request.frame
        sender = session.user
        settings = self._settings
        # Every field is checked before a retry gets its old reply. This is the hot path: each
        # check's usual case is inline, and anything else goes to the check itself, which
        # refuses it as it always has (_account_field, mid_field, text_field).
        recipient = frame.get("to")
        run = self.run
        # the session's run of messages to this recipient goes on: the recipient was checked
        # at its first, and is online and does not block the sender, as nothing but this
        # session's messages has happened since (any other event ends the run first: handle)
        goes_on = (run is not None and run.sender is session and run.skipped is None
                   and type(recipient) is str and recipient == run.told[0])
        if not goes_on and not (
                type(recipient) is str and 0 < len(recipient) <= protocol.MAX_NAME_CHARS
                and recipient in self._passwords and recipient.isprintable()
                and " " not in recipient):
            recipient = self._account_field(frame, "to")
        mid = None if frame.get("mid") is None else protocol.mid_field(frame)
        text = frame.get("text")
        if type(text) is not str or not text or len(text) > settings.max_text_chars:
            text = protocol.text_field(frame, "text", settings.max_text_chars)
        notice = frame.get("notice", False)     # (an IRC NOTICE: nothing answers it by itself)
        if type(notice) is not bool:
            notice = protocol.flag_field(frame, "notice")       # (refuses it)
        store = self._store
        # a repeat gets its old reply whatever happened since: a fuzzer's retry, after the
        # recipient had blocked the sender, was told "blocked" of a message delivered
        if mid is not None and store.senders.seen(sender, *mid) is not NEW:
            return self._taken_before(sender, mid, request.conn, frame_id)
        if not goes_on:
            if recipient == sender:
                raise Refused("self")
            if sender in store.block_lists.get(recipient, ()):     # (is_blocked, inline)
                raise Refused("blocked")
        offline = not goes_on and recipient not in self._users
        message = {"type": "message", "from": sender, "text": text}
        if notice:
            message["notice"] = True
        if offline:
            message["offline"] = True       # it waits for a login: said on its line
        head = protocol.chat_head("message", sender, text, notice, offline)
        if store.failing is not None:       # (_room_for for one recipient, inline)
            raise StoreUnavailable(store.failing)
        room = store.room_for_one(recipient, len(head), settings.store_messages,
                                  settings.store_bytes, settings.inbox_messages,
                                  settings.inbox_bytes, *self._shares.crowd)
        if room is not None and room != "crowded":
            if room == "store":
                raise Refused("store_full")
            raise Refused("inbox_full", f"too many messages already wait for {recipient}")
        # to a user who is away, or whose client is not taking what comes (a crowd waits for
        # them already: "crowded"), what each sender leaves counts (shares.py)
        counted = offline or room is not None
        if counted:
            over = self._shares.full(sender, recipient, len(head))
            if over is not None:
                raise _share_full(over, recipient)
        if self.reading and not offline:
            # with the session's other messages to `recipient` in this read (one offline
            # has nothing to gather: a run of one there cost 2 us, bench.py's offline)
            told = run.told if goes_on else [recipient]
            deliveries = self._keep_in_run(session, request.conn, told, message, head)
            if counted:
                self._shares.left(sender, recipient, len(head))
            if type(frame_id) is int:
                self._yes_waits(sender, mid, request.conn, frame_id, now)
                return deliveries
        else:
            deliveries = self._keep_and_deliver([recipient], message, head)
            if counted:
                self._shares.left(sender, recipient, len(head))
        reply = {"type": "ok", "stored": offline}
        if mid is not None:
            store.senders.taken(sender, *mid, reply, now)
        line = None
        if frame_id is not None:
            reply["id"] = frame_id      # (reply_to, inline)
            if type(frame_id) is int:   # (the usual id: the line from its template here)
                line = protocol.OK_STORED_LINES[offline] % frame_id
        deliveries.insert(0, Reply(request.conn, reply, True, line))
        return deliveries

    def _broadcast(self, session, request, frame_id, now):
        mid = protocol.mid_field(request.frame)
        text = protocol.text_field(request.frame, "text", self._settings.max_text_chars)
        notice = protocol.flag_field(request.frame, "notice", False)
        sender = session.user
        if mid is not None:
            answered = self._taken_before(sender, mid, request.conn, frame_id)
            if answered:
                return answered
        run = self.run
        # the same session's broadcast in the same read goes on with its run: nobody has come
        # or gone, and no block changed, since the run's first
        goes_on = run is not None and run.sender is session and run.skipped is not None
        if goes_on:
            told, skipped = run.told, run.skipped
        else:
            listeners = [name for name in self._users if name != sender]
            blockers = self._store.blockers(sender)
            told = [name for name in listeners if name not in blockers] if blockers else listeners
            # every user who blocks the sender, online or not: those online alone told a
            # blocked user when its blocker came and went (a trial's), which nothing else does;
            # an account no longer in the accounts file is not counted (a reviewer's)
            skipped = len(self._passwords.keys() & blockers) if blockers else 0
        message = {"type": "broadcast", "from": sender, "text": text}
        if notice:
            message["notice"] = True
        head = protocol.chat_head("broadcast", sender, text, notice)
        # (a refusal leaves any run as it is)
        fits, full, counted = self._room_for(told, len(head), sender)
        reply = {"type": "ok", "skipped": skipped}
        if full:
            reply["full"] = len(full)     # online, but too much already waits for them
        if fits is told and len(told) > 1 and self.reading:
            # all of them take it: it goes on with the run, or begins one
            deliveries = self._keep_in_run(session, request.conn, told, message, head, skipped)
        else:
            # a run this message does not go on with is delivered first: its numbers come first
            deliveries = self._run_deliveries() if run is not None else []
            if fits:
                deliveries += self._keep_and_deliver(fits, message, head)
        for name in counted:
            self._shares.left(sender, name, len(head))
        if mid is not None:
            self._store.senders.taken(sender, *mid, reply, now)
        answer = reply_to(request.conn, frame_id, reply, durable=True)
        if type(frame_id) is int and not full:      # (the usual reply: its line from a template)
            answer.line = protocol.OK_SKIPPED_LINE % (skipped, frame_id)
        return [answer, *deliveries]

    def _next_in_run(self, run, request, now):
        """The usual next message of the run under way (reach._Run, and handle): on the run's
        connection, from its session, to its recipient, with a whole-number id, a text and
        perhaps a new mid, nothing else -> [] (its yes waits with the run's); or None for
        anything else (a repeat too), which goes _on_request's way, as every refusal does.
        What _on_request and _message check at a run's first message (the token's address,
        the recipient, a block) holds for the rest of it: nothing but this session's messages
        has happened since. The rate limit is asked last: one that says no spends nothing,
        and the usual way then says it. tests/test_broadcast_runs.py holds it to the usual
        way's actions; it is the hot path's shortest (tests/test_hot_path.py)."""
        frame = request.frame
        session = run.sender
        text = frame.get("text")
        frame_id = frame.get("id")
        mid = frame.get("mid")
        settings = self._settings
        if (len(frame) != (5 if mid is None else 6) or frame.get("token") != session.token
                or frame.get("to") != run.told[0] or run.skipped is not None
                or type(text) is not str or not text or len(text) > settings.max_text_chars
                or type(frame_id) is not int
                or not -protocol.MAX_SEQ <= frame_id <= protocol.MAX_SEQ
                or session.last_seen != now):
            return None
        store = self._store
        sender = session.user
        if mid is not None:
            try:
                mid = protocol.mid_field(frame)
            except FrameError:
                return None
            if store.senders.seen(sender, *mid) is not NEW:
                return None
        head = protocol.chat_head("message", sender, text)
        if store.failing is not None or store.room_for_one(
                run.told[0], len(head), settings.store_messages, settings.store_bytes,
                settings.inbox_messages, settings.inbox_bytes,
                *self._shares.crowd) is not None:
            return None
        if self._rate_limited and self._user_limit.take(sender, now):
            return None
        # (_keep_in_run's way for a run that goes on, inline)
        seq, wire = store.keep(run.told, head)
        shared = protocol.Numbered({"type": "message", "from": sender, "text": text}, seq=seq)
        shared.wire = wire
        run.frames.append(shared)
        self._yes_waits(sender, mid, request.conn, frame_id, now)
        return []

    def _yes_waits(self, sender, mid, conn, frame_id, now):
        """The usual yes to a message of a run (ok, not stored, a whole-number id) waits with
        the run's others, for one action (Replies): a Reply each, and the glue's call and
        append each, were a tenth of a message. Its mid, if any, is taken."""
        if mid is not None:
            self._store.senders.taken(sender, *mid, {"type": "ok", "stored": False}, now)
        yeses = self._yeses
        if yeses is None:
            yeses = self._yeses = Replies(conn, [])
        yeses.ids.append(frame_id)

    def _taken_before(self, sender, mid, conn, frame_id):
        """A message whose number (`mid`: client id, number) its client had taken already is
        a repeat: it gets the reply to the highest number again (or "repeat" for an older
        one) and nothing is stored. -> the answer, or None for a new message; old_mid when
        the number is too far below the highest to tell (senders.REPLAY_WINDOW)."""
        client, number = mid
        senders = self._store.senders
        seen = senders.seen(sender, client, number)
        if seen is NEW:
            return None
        if seen is TOO_OLD:
            raise Refused("old_mid")
        reply = senders.reply_to_last(sender, client) if seen is LAST else {
            "type": "ok", "repeat": True}
        return [reply_to(conn, frame_id, reply, durable=True)]

    def _room_for(self, recipients, size, sender):
        """Which recipients take `sender`'s broadcast of about `size` bytes -> (fits, those
        skipped, those of `fits` whose share counts it: shares.py). A recipient is skipped
        whose inbox is full, or who is not reading and has as much from `sender` waiting as one
        sender may leave (a trial's sender filled such a user's inbox with 10,000 broadcasts,
        and nobody else could leave them a word). Refused store_full if the store would pass
        its quota, and unavailable while the store cannot commit (what waits for the disk is
        not allowed to grow)."""
        store = self._store
        if store.failing is not None:       # (as _writable; this is the hot path)
            raise StoreUnavailable(store.failing)
        settings = self._settings
        # deliveries waiting bound the store's memory (its index holds each), bytes its disk
        if not store.takes(len(recipients), size, settings.store_messages, settings.store_bytes):
            raise Refused("store_full")
        shares = self._shares
        crowd_messages, crowd_bytes = shares.crowd
        crowded = store.crowded(recipients, min(crowd_messages, settings.inbox_messages),
                                min(crowd_bytes, settings.inbox_bytes) - size)
        if not crowded:
            return recipients, [], ()
        full = store.crowded(crowded, settings.inbox_messages, settings.inbox_bytes - size)
        full.update(name for name in crowded if shares.full(sender, name, size) is not None)
        if not full:
            return recipients, [], crowded
        return ([name for name in recipients if name not in full], sorted(full),
                crowded - full)
