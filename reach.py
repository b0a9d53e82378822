"""How the server core reaches clients: a stored message kept once for its recipients and
offered to their delivery windows (delivery.py), and what goes out turned into actions, each
client by whichever way it is connected; a window's top-up, and runs.

A run is one session's broadcasts, or its messages to one user, read together: the glue marks a
read (`reading`), the run gathers the messages as they are kept, and its end (`end_run`, at the
end of the read, or first thing when any other event comes) offers them all at once, so each
recipient's window, box and connection take the run in a few extends and one append. Every
client is sent exactly what handling each request alone would send. A run of messages to one
user is answered together too: the usual yes to each waits in `_yeses` (one Replies action) and
goes out before anything else the core says (ChatServer.handle, end_run), so the sender reads
its replies in the order of its requests.

`Reach` is ChatServer's base class (chat_server.py): it uses the core's store (`_store`), its
sessions by user (`_users`), its windows' rules (`_deliveries`), the run under way (`run`), the
yeses waiting (`_yeses`) and what each sender has left users not reading (`_shares`).
"""
import protocol
from delivery import Window, settle, window_of
from server_events import Deliver, DeliverEach, DeliverRun


# the requests a run goes on past: more of it, or a short connection's bye, which touches
# nobody's deliveries (the run then ends with the read, without a handle of its own)
RUN_KINDS = frozenset(("broadcast", "message", "bye"))


class _Run:
    """Messages or broadcasts from one session, in one read, to the same recipients (`told`,
    one list object: the store's index knows the run by it), kept as they came; their
    deliveries wait for the end of the read (Reach.end_run) and go out together."""
    __slots__ = ("conn", "sender", "told", "frames",
                 "skipped")     # a broadcast run's: the users who block the sender
    # (no __init__: a short request is a run of one, and a call fewer counts there)


class Reach:
    """Keeping messages and reaching clients; ChatServer's base class (see the module)."""

    def _send_waiting(self, session):
        """Deliver again, in order, what the session's client has not acknowledged."""
        if session.window is None and not self._store.count_waiting(session.user):
            return []   # (most logins: nothing on its way, nothing stored for them)
        if session.window is None:
            session.window = Window(session.acked)      # (restart makes it so)
        self._deliveries.restart(session.window, on_own_connection=session.conn is not None)
        actions = self._top_up(session)
        settle(session)         # (a login with nothing waiting, say)
        return actions

    def _top_up(self, session):
        """Send the next waiting messages while the session's window has room."""
        if session.window is None:
            return []       # settled: nothing waits
        frames = self._deliveries.top_up(session.user, session.window)
        if not frames:
            return []       # (most often: a login with nothing waiting, an ack of the last)
        if len(frames) > 1 and session.conn is not None:
            return [DeliverRun([session.conn], frames)]     # on its connection, in one append
        return [action for frame in frames for action in self._reach(session, frame)]

    def _reach(self, session, frame):
        """Deliver `frame` to the session's client by whichever way it is connected."""
        if not session.stays:
            return [Deliver((session.host, session.port), session.proof, frame,
                            user=session.user)]
        if session.conn is None:
            # Detached: a numbered message stays stored and goes out at the resume, from the
            # oldest unacknowledged (or at the next login); a notice lapses, as one to a
            # listening port that cannot be reached does.
            return []
        return [Deliver((session.host, session.port), session.proof, frame, session.conn,
                        session.user)]

    def _reach_each(self, sessions, frame):
        """Deliver `frame` to each of `sessions`: those on staying connections in one
        DeliverEach (the same bytes, no call each), the others each its own way (_reach)."""
        staying, actions = [], []
        for session in sessions:
            if session.conn is not None:     # (_reach's usual case)
                staying.append(session.conn)
            else:
                actions += self._reach(session, frame)
        if staying:
            actions.append(DeliverEach(staying, frame))
        return actions

    def _tell(self, user, frame):
        """Deliver `frame` to `user` if online; nothing otherwise."""
        session = self._users.get(user)
        return [] if session is None else self._reach(session, frame)

    def _acknowledged(self, session, seq):
        """The session's client has shown everything up to `seq`: the window opens."""
        if not self._deliveries.acknowledge(session.user, window_of(session), seq):
            settle(session)
            # old news: counted as refused, so a read of thousands is a flood (a trial's four
            # users' 150,000 acks a second had slowed everyone's replies 100 times)
            self.refusals += 1
            return []
        actions = self._top_up(session)
        settle(session)         # (an ack of the last one sent, with nothing waiting)
        if self._shares.counted:        # (no call while nobody is counted: every ack is here)
            self._read_enough(session.user)
        return actions

    def _read_enough(self, user):
        """`user`'s client acknowledged: once less than a crowd waits for it, in messages and
        in bytes, what senders left it counts no more (shares.py). (Its messages alone: a
        re-attack's reader, megabytes still waiting, let a sender leave a share again at each
        acknowledgement, until nobody else could leave it a word.)"""
        if user in self._shares.counted and not self._store.crowded([user],
                                                                    *self._shares.crowd):
            self._shares.forget(user)

    def _keep_and_deliver(self, recipients, message, head):
        """Store `message` (a frame; `head` its line without the closing brace) once for all
        `recipients` until each acknowledges it; deliver it now to those online whose window
        has room. Every recipient gets the same object, and the same bytes: those on staying
        connections all in one DeliverEach."""
        seq, wire = self._store.keep(recipients, head)
        shared = protocol.Numbered(message, seq=seq)     # (its line set below: no call)
        shared.wire = wire
        if len(recipients) == 1:            # a direct message: no filter and map to set up
            target = self._users.get(recipients[0])
            online = () if target is None else (target,)
        else:
            online = filter(None, map(self._users.get, recipients))
        return self._reach_each(self._deliveries.offer_each(online, shared), shared)

    def _keep_in_run(self, session, conn, told, message, head, skipped=None):
        """Keep `message` for `told` (names: the run's own list when it goes on with the run)
        in the session's run, which it begins if another (or none) is under way -> the
        deliveries of the run it ended, if one: a run's deliveries wait for its end."""
        run = self.run
        ended = []
        if run is not None and not (run.sender is session and run.told is told):
            ended = self._run_deliveries()
            run = None
        if run is None:
            run = self.run = _Run()
            run.conn, run.sender, run.told, run.skipped, run.frames = (
                conn, session, told, skipped, [])
        seq, wire = self._store.keep(told, head)
        shared = protocol.Numbered(message, seq=seq)     # (its line set below: no call)
        shared.wire = wire
        run.frames.append(shared)
        return ended

    def end_run(self):
        """The run has ended (the glue calls this at the end of a read) -> its yeses waiting,
        then its deliveries (_run_deliveries)."""
        yeses, self._yeses = self._yeses, None
        if yeses is None:
            return self._run_deliveries()
        return [yeses, *self._run_deliveries()]

    def _run_deliveries(self):
        """The run has ended -> its deliveries: to the recipients on staying connections one
        DeliverRun for each part of the run that goes out (all of it, usually: see offer_run),
        to a listening port each message alone. Its yeses are not among them: they wait
        for whatever the core says next (ChatServer.handle), which they must come before."""
        run, self.run = self.run, None
        frames = run.frames
        online = filter(None, map(self._users.get, run.told))
        if len(frames) == 1:
            return self._reach_each(self._deliveries.offer_each(online, frames[0]), frames[0])
        actions = []
        for going, sessions in self._deliveries.offer_run(online, frames):
            staying = []
            for session in sessions:
                if session.conn is not None:
                    staying.append(session.conn)
                else:
                    for frame in going:
                        actions += self._reach(session, frame)
            if staying:
                actions.append(DeliverRun(staying, going))
        return actions
