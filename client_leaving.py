"""How the client ends: a logout, then the exit on its answer; what a script's end waits for
first (messages kept in an outage, those that waited for this login, private messages on their
way); a script's input paced while much waits; and what is said at the exit, with its status.

`Leaving` is ChatClient's base class (chat_client.py): it uses the core's settings, typed lines,
outbox, peers, requests (`_request`, `pending`) and timers (`_arm`), and the counts it reports.
"""
import peer
from client_events import (Arm, Cancel, DrainDue, Exit, ExitDue, Fate, HeartbeatDue, Log,
                           OutageWaitDue, PauseInput, ResumeInput, Show, ShowFate, Stage)
from client_requests import Purpose
from commands import Command, described, parse_command
from words import plural

MAX_WAITING = 1000          # a script's lines and messages held for the server (_pace_input)


def _failures_said(failures):
    """[(count, what is counted, what became of them)] -> "2 messages were not sent; ..."."""
    return "; ".join(f"{plural(count, word)} {'were' if count > 1 else 'was'} {fate}"
                     for count, word, fate in failures if count)


class Leaving:
    """Ending the run, for ChatClient (see the module)."""

    def _leaving_waits(self, now, out):
        """True while a script's `logout` or `quit` waits, as the input's end does, for the
        messages typed before it to be taken (in an outage, up to outage_wait_s): a reviewer's
        3,000 broadcasts and a logout listed 717 as not sent; then for those that waited for
        this login to be shown (_draining): a trial's script that logged in and out read them
        in some runs only, and in others after its logout, again at each later login; then
        for private messages on their way to peers (peer.Peers.holding)."""
        if not (self.settings.scripted and self.stage is Stage.LOGGED_IN):
            return False
        command = parse_command(self.lines[0])
        if type(command) is not Command or command.name not in ("logout", "quit"):
            return False
        if self.outbox.entries:
            if not self.outbox.retry_s:
                return not self._slowed_too_long(now)
            return self._held_by_outage(now, out)
        return self._draining(now, out) or self._held_by_peers(out)

    def _held_by_outage(self, now, out):
        """True while a script waits, up to outage_wait_s, for a server that could not be
        reached (or could not store) to take the messages kept for it (the outbox retries
        meanwhile): at the input's end, or with its input paused. A trial's script ended a
        second into a server's restart and listed 95 messages as not sent, right after it had
        said they would be."""
        if not self._kept_by_outage():
            self._outage_wait_over(out)
            return False
        if self.outage_wait == "over":
            return False
        if self.outage_wait is None:
            self.outage_wait = "waiting"
            self._arm(OutageWaitDue(), now + self.settings.outage_wait_s, out)
            why = "The input has ended" if self.input_ended else "The input waits"
            out.append(Show("system", f"{why}: waiting up to {self.settings.outage_wait_s:g} s "
                                      f"for the server to take "
                                      f"{plural(len(self.outbox.entries), 'message')}."))
        return True

    def _held_by_peers(self, out):
        """True while the end waits for private messages on their way to peers, said once (a
        re-attack's Ctrl-D waited 10 s for a stopped peer without a word)."""
        holding = self.peers.holding()
        if holding and not self.peer_wait_said:
            self.peer_wait_said = True
            out.append(Show("system", f"Waiting up to {peer.PEER_PROOF_S:g} s for "
                                      f"{plural(holding, 'private message')} to be "
                                      f"acknowledged."))
        return bool(holding)

    def _kept_by_outage(self):
        """True while messages wait for a server that could not take them (a retry's
        backoff runs)."""
        return bool(self.outbox.entries) and bool(self.outbox.retry_s)

    def _outage_wait_over(self, out):
        """The server took what waited: an outage's wait is over, and a later outage has its
        own (a script that waited one out at a logout, logged in again, did not wait at the
        next)."""
        if self.outage_wait == "waiting":
            out.append(Cancel(OutageWaitDue()))
        self.outage_wait = None

    def _outage_wait_due(self, key, now, out):
        if self.outage_wait == "waiting":
            out.append(Log(f"the server took no message in {self.settings.outage_wait_s:g} s; "
                           f"{plural(len(self.outbox.entries), 'message')} waiting"))
            self.outage_wait = "over"   # _run_lines, after this event, exits

    def _pace_input(self, waiting, busy, out):
        """A script's input (a file, a pipe) is read no further while MAX_WAITING lines and
        messages wait for the server, and again once half of them have gone: a trial's `yes |
        client.py` grew by 25 MB a second while the server took 20 messages. Out of a session,
        with no login under way, it is read whatever waits: the next login is in it."""
        if not self.settings.scripted or self.input_ended:
            return
        wants_input = self.stage is not Stage.LOGGED_IN and not busy
        if not self.input_paused and waiting >= MAX_WAITING and not wants_input:
            self.input_paused = True
            out.append(PauseInput())
        elif self.input_paused and (waiting <= MAX_WAITING // 2 or wants_input):
            self.input_paused = False
            out.append(ResumeInput())

    def _draining(self, now, out):
        """True while the input's end still waits for the messages that waited for this login:
        shown and acknowledged before the logout, they are not kept for the next run (a script
        that logs in reads them). Bounded by drain_wait_s; the rest waits on the server."""
        if self.drain == "over":
            return False
        if self.backlog_left > 0 or (self.backlog_upto and self.doorkeeper.servers_open()):
            if self.drain is None:
                self.drain = "waiting"
                self._arm(DrainDue(), now + self.settings.drain_wait_s, out)
            return True
        if self.drain == "waiting":
            out.append(Cancel(DrainDue()))
        self.drain = "over"
        return False

    def _drain_due(self, key, now, out):
        if self.drain == "waiting":
            out.append(Log(f"the session ends; {self.backlog_left} of the messages that "
                           f"waited for this login still wait for the next"))
            self.drain = "over"     # _run_lines, after this event, logs out

    def _start_exit(self, now, out):
        """Log out, then exit on the reply, a failure, or after exit_wait_s."""
        self.exiting = True
        self._cancel(HeartbeatDue(), out)
        self._request(Purpose.EXIT, {"type": "logout", "token": self.token}, out,
                      blocks_input=False)
        out.append(Arm(ExitDue(), now + self.settings.exit_wait_s))

    def _exit_due(self, key, now, out):
        if self._stop_why is not None:
            out.append(Log("no answer to the message in flight; stopping anyway"))
            self._exit(out, 1, self._stop_why)
        elif self.exiting and self.token is None and self._login_sent is not None:
            # (a trial's Ctrl-C as a stopped server held the login left without a word; the
            # server went on, took it, and showed the user online until its time-out). Said as
            # the program ends, so that a window, closing, shows it too (a re-attack's did not)
            self._exit(out, 0, "the login got no answer: if the server takes it later, you "
                               "show as online until it times the session out")
        elif self.exiting:
            out.append(Log("no reply to logout; exiting anyway"))
            self._exit(out, 0, "the logout got no answer: you may show as online until the "
                               "server times the session out")

    def _report_unread(self, out):
        """Lines typed and not yet taken (a line before them waits for the server) go unread
        when the user quits: a message is listed as not sent, the rest counted, never shown
        (before a login one may be a password). A trial's Ctrl-C, as a stopped server held the
        line before them, lost them without a word."""
        unread = 0
        for line in self.lines:
            command = parse_command(line) if self.stage is Stage.LOGGED_IN else None
            if type(command) is Command and command.name in ("message", "broadcast", "private"):
                self.unread_messages += 1
                out.append(ShowFate(None, Fate.REFUSED, "Not sent (you quit before it went): "
                                    + described(command), "you quit before it went", True))
            elif type(command) is Command and command.name not in ("logout", "quit"):
                # (named: a trial's "Not read: 1 line" did not say which command was not done)
                self.not_done += 1
                out.append(ShowFate(None, Fate.REFUSED, "Not done (you quit before it went): "
                                    + described(command), "you quit before it went", True))
            else:
                unread += 1
        if unread:
            self.unread_lines += unread
            out.append(ShowFate(None, Fate.REFUSED, f"Not read: {plural(unread, 'line')} you "
                                                    f"typed before quitting.", "", True))
        self.lines.clear()

    def _exit(self, out, code=0, reason=""):
        leaving = self.exiting          # (the user chose to leave, before this)
        self.exiting = self.done = True
        # left at a name prompt by choice, what was kept for the next login waited for it (a
        # trial's was said never acknowledged by the server); a session that ended as the
        # user left (a restart) is no choice of theirs (a reviewer's window said so)
        why = ("the server never acknowledged it" if self.token is not None or code
               or self.session_user is None
               else "the session ended before the server took it" if leaving
               else f"you did not log in again as {self.session_user}")
        for pending in self.pending.values():
            if (leaving and pending.purpose is Purpose.COMMAND
                    and pending.command.name not in ("logout", "online")):
                # sent, never answered: a stopped server may still do it (a trial's unblock,
                # left at a Ctrl-C without a word, was done once the server went on)
                self.perhaps_done += 1
                out.append(ShowFate(None, Fate.UNSURE, "Perhaps not done (you quit before the "
                                    "server answered): " + described(pending.command),
                                    "you quit before the server answered", True))
        listed = len(out)
        self._report_unsent(out, why, at_exit=True)
        sent = [item.fate for item in out[listed:] if type(item) is ShowFate]
        undelivered = self.peers.left_undelivered()
        out.extend(undelivered)
        private = [item.fate for item in undelivered if type(item) is ShowFate]
        # counted as each was listed (a trial's private message, which its peer had shown,
        # was counted "not sent" under the line that said "Perhaps not delivered")
        unsure, unsure_private = sent.count(Fate.UNSURE), private.count(Fate.UNSURE)
        unsent = len(sent) + len(private) - unsure - unsure_private + self.unread_messages
        failures = [(unsent, "message", "not sent (listed above)"),
                    (unsure, "message", "perhaps not sent (listed above)"),
                    (unsure_private, "private message", "perhaps not delivered (listed above)"),
                    (self.refused, "message", "refused (said above)"),
                    (self.refused_logins, "login", "refused (said above)"),
                    (self.not_understood, "line", "not understood (said above)"),
                    (self.not_done, "command", "not done (said above)"),
                    (self.perhaps_done, "command", "perhaps not done (said above)"),
                    (self.unread_lines, "line", "not read (said above)"),
                    (self.refused_commands, "command", "refused (said above)"),
                    (self.privates_undelivered, "private message",
                     "not delivered (said above)"),
                    (self.privates_unsure, "private message",
                     "perhaps not delivered (said above)")]
        if any(count for count, _, _ in failures) and self.settings.scripted:
            # what reads a script's status cannot read the lines above it (a trial's ran to
            # its end with three listed as not sent, status 0; another's with one refused;
            # another's three wrong passwords said only that no login had succeeded)
            said = _failures_said(failures)
            reason = f"{reason}; {said}" if reason else said
            code = 1
        elif unsent or unsure or unsure_private:
            # said as the program ends too, not only above it: a window's lines go with it (a
            # reviewer's closed without a word, its message not sent), and it shows this
            said = _failures_said([(unsent, "message", "not sent"),
                                   (unsure, "message", "perhaps not sent"),
                                   (unsure_private, "private message", "perhaps not delivered")])
            reason = f"{reason}; {said}" if reason else said
        out.append(Exit(code, reason))

    def _reply_exit(self, pending, frame, now, out):
        self._exit(out)

    def _fail_exit(self, pending, now, out):
        self._exit(out)
