"""The client's way in: a name checked, a password sent, and what the server says to them; a
server looked for before the first name (probes); a script stopped where a person would have to
decide what to type next.

`LoginSteps` is ChatClient's base class (chat_client.py): it uses the core's settings, stage,
typed lines (`lines`), requests (`_request`, `pending`), outage, doorkeeper and outbox, and the
counts a script's exit status is made of.
"""
import limits
from client_events import Arm, ExitDue, LoginRetry, ProbeDue, Prompt, Show, ShowSending, Stage
from client_requests import RETRY_MAX_S, Purpose
from commands import (DEFAULT_ATTEMPTS, Command, case_hint, error_code, error_text,
                      parse_command, refusal, seconds_text, times_text)
from protocol import MAX_NAME_CHARS, MAX_TEXT_CHARS
from words import plural

# typed at the name prompt, most likely a command, not a name: told how to leave
COMMAND_LIKE_WORDS = ("quit", "exit", "logout", "bye", "help")
# ... and these leave, as at the command prompt, when no account has the name
QUIT_WORDS = ("quit", "exit")


# a login answered so is not refused, and goes again (_login_held): what is said at each such
# answer (or None), what at the first of them, and why a script stops once it has waited
_LOGIN_HELD = {
    "slow_down": ("The server is busy logging people in; trying again in {wait_s:g} s.", None,
                  "the server asked it to wait for"),
    "unavailable": (None, "The server cannot store anything just now; your login is tried "
                          "again every {wait_s:g} s until it can (Ctrl-C leaves).",
                    "the server could not store anything for"),
}


class LoginSteps:
    """Logging in, for ChatClient (see the module)."""

    def _username_line(self, name, out):
        if not name:
            out.append(Prompt(Stage.USERNAME))
            return
        if " " in name and self._kept_for_next_login(name, out):
            return
        if len(name) > MAX_NAME_CHARS:
            # no account has such a name: not sent (one past the frame limit came back in the
            # protocol's words, "frame longer than 65536 bytes": a trial's)
            out.append(Show("system", "Wrong username."))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))
            return
        self.user = name
        self._request(Purpose.CHECK_USER, {"type": "check_user", "user": name}, out,
                      blocks_input=True)

    def _kept_for_next_login(self, line, out, ask=True):
        """A message typed as the session ended (a restart, a time-out) reached the user name
        prompt: no name holds a space, so it is a message, kept like those the session left
        unsent, for the next login as the same user -> True if it was (a trial's typed lines
        were each "Wrong username.", and lost). `ask`: ask for the name again after it."""
        command = parse_command(line)
        user = self.session_user       # (not the last name typed: a trial's was a password)
        if (user is None or type(command) is not Command
                or command.name not in ("message", "broadcast")):
            return False
        refused = refusal(command, user)
        if refused is not None:         # (said now: no name holds a space either)
            self.refused += 1
            out.append(Show("system", refused))
            if ask:
                out.append(Prompt(Stage.USERNAME))
            return True
        entry = self.outbox.add(user, command)
        out.extend([ShowSending(entry.mid, command.user, command.text),
                    Show("system", f"You are not logged in: your message waits, and goes once "
                                   f"you log in again as {user}.")])
        if ask:
            out.append(Prompt(Stage.USERNAME))
        return True

    def _password_line(self, password, out):
        if not password:
            out.append(Prompt(Stage.PASSWORD))
            return
        if len(password) > MAX_TEXT_CHARS:      # (the server's words for it are a developer's)
            out.append(Show("system", f"No password is longer than {MAX_TEXT_CHARS:,} "
                                      f"characters. Please try again."))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        # our run's id (our mids begin with it): the server keeps which of them it took for as
        # long as we run, so a message retried after a day away is still not stored twice
        frame = {"type": "login", "user": self.user, "password": password,
                 "client": self.settings.client_id}
        if self.settings.stay:
            frame["stay"] = True    # deliveries come on our staying connection, not the port
        if self.settings.listen_port is not None:
            frame["port"] = self.settings.listen_port
        self._login_sent = frame        # held until its answer: a slow_down sends it again
        self._request(Purpose.LOGIN, frame, out, blocks_input=True)

    def _login_retry(self, key, now, out):
        frame, self.login_again = self.login_again, None
        if frame is None or self.exiting:
            return
        if frame["type"] == "check_user" and self.stage is Stage.USERNAME:
            self._request(Purpose.CHECK_USER, frame, out, blocks_input=True)
        elif frame["type"] == "login" and self.stage is Stage.PASSWORD:
            self._login_sent = frame
            self._request(Purpose.LOGIN, frame, out, blocks_input=True)

    def _reply_check_user(self, pending, frame, now, out):
        self.login_tries_unanswered, self.login_backoff_s = 0, 0.0
        if frame.get("type") == "ok":
            self.stage = Stage.PASSWORD
            out.append(Prompt(Stage.PASSWORD))
        elif error_code(frame) in ("unknown_user", "bad_field"):
            if str(self.user).lower() in QUIT_WORDS and not case_hint(frame):
                # no account's name (nor one in another case, which is hinted at): the way out
                # it looks like (a trial's new user, asked again, thought it could not leave)
                self._on_interrupted(None, now, out)
                return
            # a name no account can have (a space, a control character, too long) is as wrong
            # as an unknown one, and said in the same words, not in the protocol's
            leaving = str(self.user).lower() in COMMAND_LIKE_WORDS and not self.settings.scripted
            out.append(Show("system", "Wrong username." + case_hint(frame)
                            + (" (Type an account's name; Ctrl-D or Ctrl-C leaves.)" if leaving
                               else "")))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))
        else:
            out.append(Show("system", error_text(frame)))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))

    def _reply_login(self, pending, frame, now, out):
        self.login_tries_unanswered, self.login_backoff_s = 0, 0.0
        sent, self._login_sent = self._login_sent, None     # (the password is held no longer)
        held = self._login_held_since
        if held is not None and error_code(frame) != held[0]:
            self._login_held_since = None       # (the next full disk is said again)
        if self.exiting:            # (Ctrl-C as it went: _on_interrupted)
            if frame.get("type") == "welcome" and isinstance(frame.get("token"), str):
                self.token = frame["token"]
                self._request(Purpose.EXIT, {"type": "logout", "token": self.token}, out,
                              blocks_input=False)
            else:
                self._exit(out)
            return
        if frame.get("type") == "welcome":
            self._logged_in(frame, now, out)
            return
        out.extend(self.doorkeeper.refuse_held())
        code = error_code(frame)
        if code == "wrong_password":
            out.append(Show("system", "Wrong password. Please try again."))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        if code == "too_many_attempts":
            attempts = frame.get("attempts")
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                attempts = DEFAULT_ATTEMPTS
            seconds = seconds_text(frame.get("seconds"))
            out.append(Show("system", f"You have entered wrong password {times_text(attempts)} "
                                      f"times. You will be blocked for {seconds} seconds."))
        elif code == "locked":
            seconds = frame.get("seconds")      # (the original's words, and how long)
            left = f" (in {seconds} s)" if type(seconds) is int and seconds > 0 else ""
            out.append(Show("system", f"You are still blocked, please try again later{left}"))
            # the password is asked again, as the original's transcript does: once the time
            # is up it is typed again, not the name first
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        elif code == "unknown_user":
            out.append(Show("system", "Wrong username."))
        elif code in _LOGIN_HELD:
            self._login_held(code, sent, frame, now, out)
            return
        else:
            out.append(Show("system", error_text(frame)))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        self._login_refused(out)
        self._back_to_username(out)

    def _login_held(self, code, sent, frame, now, out):
        """The login answered slow_down (the server checks only so many passwords a second,
        each costing it milliseconds) or unavailable (it cannot store anything just now, a
        full disk): not refused, it goes again once it has waited as asked (a trial's user was
        asked the password again, as if it were wrong). A person leaves with Ctrl-C; a script
        waits outage_wait_s at most, as for its messages in an outage (a review's retried for
        as long as the disk stayed full, a re-check's as long as the server slowed it down)."""
        wait_s = limits.asked_wait(frame.get("seconds"), 1.0, RETRY_MAX_S)
        said_each_time, said_first, why = _LOGIN_HELD[code]
        if self._login_held_since is None:
            self._login_held_since = (code, now)
            said = said_first or said_each_time
        elif (self.settings.scripted
              and now - self._login_held_since[1] >= self.settings.outage_wait_s):
            self._script_stops(out, f"the login failed ({why} "
                                    f"{self.settings.outage_wait_s:g} s)")
            return
        else:
            said = said_each_time
        if said:
            out.append(Show("system", said.format(wait_s=wait_s)))
        self.login_again = sent
        self._arm(LoginRetry(), now + wait_s, out)

    def _login_refused(self, out):
        """A name or a password was refused. A script's next line answers the next prompt,
        as in the original's transcripts (a wrong name, then the right one; three wrong
        passwords, then the name again): it reads on, and ends with status 1. A person is asked
        again, and what they typed ahead, meant for the prompt that would have come next (a
        password, say), is not used: told how much, never what (a trial's password, typed after
        a mistyped name, went to the server as the next name, and showed)."""
        if self.settings.scripted:
            self.refused_logins += 1
        else:
            self._forget_typed_ahead(out)

    def _script_fails(self, why, out):
        """A login that cannot be tried (no server): a run reading a file or a pipe stops
        there -> True if it did; a person's lines typed ahead are not used."""
        if self._script_stops(out, f"the login failed ({why})"):
            return True
        self._forget_typed_ahead(out)
        return False

    def _forget_typed_ahead(self, out):
        if self.lines:
            said = plural(len(self.lines), "line")
            self.lines.clear()
            out.append(Show("system", f"What you typed after it ({said}) was not used."))

    def _script_stops(self, out, why):
        """A run reading a file or a pipe stops where a person would have to decide what to
        type next, with status 1 and `why` -> True if it did."""
        if not self.settings.scripted:
            return False
        if self.lines or not self.input_ended:
            why += "; the rest of the input was not read"   # (said only when there was one)
        self.lines.clear()
        if self.outbox.sending in self.pending:
            # its answer is on the way: waited for (exit_wait_s at most), the list of what was
            # not sent says whether the server took it. (A script stopped past its time-out
            # said "Perhaps not sent" of a message the server then refused: no_session.)
            self.exiting = True
            self._stop_why = why
            out.append(Arm(ExitDue(), self._now + self.settings.exit_wait_s))
        else:
            self._exit(out, 1, why)
        return True

    def _stopped_when_answered(self, out):
        """A script's stop that waited for its message in flight goes on once it is answered."""
        if self._stop_why is not None and self.outbox.sending is None and not self.done:
            self._exit(out, 1, self._stop_why)

    def _fail_check_user(self, pending, now, out):
        if self._script_fails(f"cannot reach the server: {self.outage.reason}", out):
            return
        if str(self.user).lower() in QUIT_WORDS:
            self._on_interrupted(None, now, out)       # (a way out, whatever the server says)
        elif str(self.user).lower() in COMMAND_LIKE_WORDS:
            # most likely a way out, not a name: asked again, not held for the server (a
            # trial's "quit" in an outage waited as a name, with what was typed after it)
            out.append(Show("system", f"{self.user} was not checked: the server cannot be "
                                      f"reached. Type an account's name; Ctrl-D or Ctrl-C "
                                      f"leaves."))
            out.append(Prompt(Stage.USERNAME))
        elif self._waits_for_server():
            # the name waits for the server, as a login does (_fail_login), and the lines typed
            # after it with it: asked again, the password typed next was shown, and taken for
            # a name (a trial's, after a logout with the server down; another's staying client)
            self.login_again = {"type": "check_user", "user": self.user}
            self._wait_for_server("Your user name waits for the server, and is checked as soon "
                                  "as it answers.", out)
        else:
            out.append(Prompt(Stage.USERNAME))

    def _fail_login(self, pending, now, out):
        out.extend(self.doorkeeper.refuse_held())
        if self.exiting:            # (Ctrl-C as it went: nothing to log out of)
            self._login_sent = None
            self._exit(out)
            return
        if self._script_fails(f"cannot reach the server: {self.outage.reason}", out):
            return
        # the password typed is kept, not asked for again: the login goes again once a probe
        # finds the server (_reached), or a staying client's link is made again (LinkUp), as
        # typed lines wait (a trial's had to be typed again; another's staying client took a
        # message typed after it for the password)
        sent, self._login_sent = self._login_sent, None
        self.login_again = sent if self._waits_for_server() else None
        if self.login_again is not None:
            self._wait_for_server("Your login waits for the server, and goes as soon as it "
                                  "answers.", out)
        else:
            out.append(Prompt(Stage.PASSWORD))

    def _wait_for_server(self, said, out):
        """The name or login in login_again got no answer, and waits for the server (said so):
        it goes once the server is seen, at once the first time, then 1 s later, doubling up to
        RETRY_MAX_S (an answer starts it again)."""
        self.login_waits = True
        if self.login_tries_unanswered:
            self.login_backoff_s = limits.next_backoff(self.login_backoff_s, 1.0, RETRY_MAX_S)
        self.login_tries_unanswered += 1
        out.append(Show("system", said))
        self._leave_if_ended_while_waiting(self._now, out)

    def _waits_for_server(self):
        """True if something will look for the server by itself (probes, or a staying
        client's link, made again with backoff), so a name or login can wait for it; a client
        that does neither would wait for nothing, and asks again."""
        return self.settings.check_server or self.settings.stay

    def _missing_at_start(self, out):
        """check_server found no server before the first username: a script stops there; a
        person is told, once, that typing may begin (a trial's screen said only that the
        server could not be reached, and the user guessed)."""
        if self.settings.scripted:
            self.lines.clear()
            self._exit(out, 1, f"cannot reach {self.outage.where()} ({self.outage.reason}); "
                               f"the input was not read")
        else:
            if not self.told_to_type:
                self.told_to_type = True
                out.append(Show("type_ahead"))
            self._leave_if_ended_while_waiting(self._now, out)

    def _reply_probe(self, pending, frame, now, out):
        if self.awaiting_server:
            self.awaiting_server = False
            out.append(Prompt(Stage.USERNAME))

    def _fail_probe(self, pending, now, out):
        if not self.awaiting_server:
            return
        if self.settings.stay:
            # its link was taken (LinkUp): only the look at the port failed (a server that
            # allows one connection an address, or stopped meanwhile), and the link carries
            # the name as it did before the look (a re-attack's staying client, its probe
            # failed, never asked the server again)
            self.awaiting_server = False
            out.append(Prompt(Stage.USERNAME))
            return
        self._missing_at_start(out)

    def _probe_later(self, now, out):
        """Look for the server again after a backoff, unless a look is planned or under way."""
        if ProbeDue in self.outage.tries_at or self._probing():
            return
        self._arm(ProbeDue(), now + self.outage.next_probe_s(), out)

    def _probing(self):
        """True while a probe is on its way."""
        return any(p.purpose is Purpose.PROBE for p in self.pending.values())

    def _probe_due(self, key, now, out):
        if (self.stage is not Stage.LOGGED_IN and not self.exiting
                and self.outage.reason is not None):
            self._request(Purpose.PROBE, None, out, blocks_input=False)
