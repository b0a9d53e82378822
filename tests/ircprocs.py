"""Real IRC clients from Debian's packages for the end-to-end tests, and a raw IRC connection.

- `WeeChat`: `weechat-headless` in a directory of its own. It is told what to do through its
  fifo plugin (one command a line, after it started) and watched through its logger plugin's
  files (every buffer's lines, flushed at once) and a trigger that notes each PONG it sends.
- `IrssiInTmux`: `irssi` in a tmux server of its own (its own socket): typed at with
  `send-keys`, read with `capture-pane`.

Every wait polls with a deadline; nothing sleeps for a fixed time. Each class ends what it
started, by PID. `missing_*()` say why a client cannot run here (the test then skips);
`make test` installs them where it can (tests/setup_irc_clients.sh).
"""
import base64
import glob
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time

WAIT_S = 10.0
POLL_S = 0.02           # between looks at a file or a screen: a bounded pause, not a sync
WEECHAT_PLUGINS = ("/usr/lib/*/weechat/plugins", "/usr/lib/weechat/plugins",
                   "/usr/local/lib/weechat/plugins")
CLIENT_ENV = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def poll(look, what, timeout_s=WAIT_S, describe=lambda: "", every_s=POLL_S):
    """Call look() every every_s until it returns something true (returned), for at most
    timeout_s."""
    end = time.monotonic() + timeout_s
    while True:
        found = look()
        if found:
            return found
        if time.monotonic() >= end:
            raise AssertionError(f"never saw {what} within {timeout_s} s\n{describe()}")
        select.select([], [], [], every_s)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_pids(pids, timeout_s=WAIT_S):
    """SIGTERM each PID still there, wait for them (bounded), then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        living = [pid for pid in pids if _alive(pid)]
        for pid in living:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in living) and time.monotonic() < end:
            select.select([], [], [], POLL_S)


# -- WeeChat headless ---------------------------------------------------------------------------

def missing_weechat():
    """Why WeeChat cannot be driven here, or None."""
    if shutil.which("weechat-headless") is None:
        return "weechat-headless is not installed (Debian: weechat-headless)"
    for plugin in ("fifo", "trigger"):
        if not any(glob.glob(os.path.join(where, f"{plugin}.so")) for where in WEECHAT_PLUGINS):
            return (f"WeeChat's {plugin} plugin is not installed (Debian: weechat-plugins), and "
                    f"the test drives WeeChat through it")
    return None


class WeeChat:
    """`weechat-headless --dir HOME` logged in to our IRC port as `nick` by SASL PLAIN (server
    `chat` in WeeChat). Its buffers' lines go to HOME/logs/<buffer>.weechatlog at once."""

    def __init__(self, home, port, nick, password, *, timeout_s=WAIT_S):
        self.home = home
        home.mkdir(exist_ok=True)
        self.out = open(home / "stdout.txt", "ab")
        self.proc = subprocess.Popen(
            ["weechat-headless", "--dir", str(home), "--no-connect",
             "--plugins", "irc,logger,fifo,trigger"],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
            env={**os.environ, **CLIENT_ENV})
        self.fifo = home / f"weechat_fifo_{self.proc.pid}"
        try:
            self._log_in(port, nick, password, timeout_s)
        except BaseException:
            self.kill()
            raise

    def _log_in(self, port, nick, password, timeout_s):
        poll(self.fifo.exists, f"WeeChat's fifo {self.fifo}", timeout_s, self.describe)
        if "chat.addresses" not in self.settings():      # a home used before keeps them
            for command in (
                    "/set logger.file.flush_delay 0",           # each line in its file at once
                    "/trigger add acked signal *,irc_out1_pong \"\" \"\" "
                    "\"/print -core sent ${tg_signal_data}\"",    # PONGs in the core's log
                    f"/server add chat 127.0.0.1/{port} -notls",
                    f"/set irc.server.chat.nicks {nick}",
                    "/set irc.server.chat.sasl_mechanism plain",
                    f"/set irc.server.chat.sasl_username {nick}",
                    f"/set irc.server.chat.sasl_password {password}",
                    "/set irc.server.chat.sasl_fail disconnect",
                    "/set irc.server.chat.autoreconnect off",
                    "/set irc.server.chat.autojoin #chat",
                    "/set irc.server.chat.anti_flood_prio_high 0",   # no 2 s between lines
                    "/set irc.server.chat.anti_flood_prio_low 0",
                    "/save"):
                self.command(command)
        self.command("/connect chat")

    def settings(self):
        """The saved irc.conf ('' before the first /save)."""
        path = self.home / "irc.conf"
        return path.read_text(errors="replace") if path.exists() else ""

    def command(self, command, buffer=None):
        """Run a WeeChat command (or say a text) in `buffer` (e.g. irc.server.chat,
        irc.chat.#chat), or in the core buffer."""
        line = f"{buffer or '*'} *{command}\n" if buffer else f"*{command}\n"
        fd = poll(self._open_fifo, "WeeChat reading its fifo", describe=self.describe)
        try:
            os.write(fd, line.encode())         # under PIPE_BUF: written whole
        finally:
            os.close(fd)

    def _open_fifo(self):
        try:
            return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:         # ENXIO: no reader yet
            return None

    def say(self, target, text):
        """/msg target text, from the server buffer."""
        self.command(f"/msg {target} {text}", "irc.server.chat")

    def log(self, buffer):
        """The logger's file of `buffer` ('irc.chat.seas', 'irc.chat.#chat', 'core.weechat')."""
        path = self.home / "logs" / f"{buffer}.weechatlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, buffer, pattern, timeout_s=WAIT_S, count=1):
        """Wait until `buffer`'s log matches `pattern` (a regex) `count` times -> the matches."""
        def look():
            found = re.findall(pattern, self.log(buffer), re.MULTILINE)
            return found if len(found) >= count else None
        return poll(look, f"{pattern!r} in WeeChat's {buffer} log", timeout_s, self.describe)

    def wait_joined(self, timeout_s=WAIT_S, count=1):
        """Logged in the `count`th time, with the room's names in (the server then gives
        what it held for us)."""
        self.wait_log("irc.chat.#chat", r"Channel #chat: \d+ nick", timeout_s, count)

    def describe(self):
        logs = sorted(glob.glob(str(self.home / "logs" / "*.weechatlog")))
        return "\n".join(f"--- {os.path.basename(path)}\n{open(path, errors='replace').read()}"
                         for path in logs)

    def quit(self, timeout_s=WAIT_S):
        """/quit (QUIT to the server, then WeeChat exits); SIGKILL if it does not -> status."""
        if self.proc.poll() is None:
            try:
                self.command("/quit")
                self.proc.wait(timeout_s)
            except (AssertionError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


# -- irssi in tmux ------------------------------------------------------------------------------

def missing_irssi():
    """Why irssi cannot be driven here, or None."""
    for program, package in (("irssi", "irssi"), ("tmux", "tmux")):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: {package})"
    return None


# irssi's own settings: its user name, and no 2.2 s between the lines it sends (the server's
# flood limits are far above what a test sends)
IRSSI_CONFIG = """settings = {
  core = { real_name = "chat test"; user_name = "%s"; };
  "irc/core" = { cmd_queue_speed = "0"; };
};
"""


class IrssiInTmux:
    """`irssi --home=HOME -c 127.0.0.1 -p PORT -n NICK -w PASSWORD` (PASS) in a 100x30 tmux
    window, in a tmux server of its own (socket HOME/tmux.sock)."""

    def __init__(self, home, port, nick, password):
        self.home = home
        home.mkdir(exist_ok=True)
        (home / "config").write_text(IRSSI_CONFIG % nick)
        self.socket = str(home / "tmux.sock")
        self.pids = []
        self.tmux("new-session", "-d", "-s", "irssi", "-x", "100", "-y", "30",
                  f"irssi --home={home} -c 127.0.0.1 -p {port} -n {nick} -w {password}")
        try:
            server_pid, pane_pid = self.tmux("display-message", "-p", "-t", "irssi",
                                             "#{pid} #{pane_pid}").split()
        except BaseException:
            self._kill_server()
            raise
        self.pids = [int(pane_pid), int(server_pid)]     # irssi, then the tmux server

    def tmux(self, *args):
        env = {name: value for name, value in os.environ.items() if name != "TMUX"}
        done = subprocess.run(["tmux", "-f", "/dev/null", "-S", self.socket, *args],
                              capture_output=True, text=True, timeout=WAIT_S,
                              env={**env, **CLIENT_ENV})   # not nested in a tmux we run in
        assert done.returncode == 0, f"tmux {args[0]}: {done.stderr}"
        return done.stdout

    def type(self, text):
        """Type `text` (literally) and press Enter."""
        self.tmux("send-keys", "-t", "irssi", "-l", text)
        self.tmux("send-keys", "-t", "irssi", "Enter")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "irssi")

    def wait_screen(self, pattern, timeout_s=WAIT_S):
        """Wait until the screen matches `pattern` (a regex) -> the match."""
        seen = [""]

        def look():
            seen[0] = self.screen()
            return re.search(pattern, seen[0])
        return poll(look, f"{pattern!r} on irssi's screen", timeout_s, lambda: seen[0])

    def stop(self):
        """/quit, then the tmux server goes; whatever is left is ended by PID."""
        if self.pids and _alive(self.pids[0]):
            try:
                self.type("/quit")
            except (AssertionError, subprocess.TimeoutExpired):
                pass
        if self.pids and _alive(self.pids[-1]):
            self._kill_server()
        end_pids(self.pids)

    def _kill_server(self):
        """Our tmux server (by its socket) ends, and the irssi in it is sent SIGHUP."""
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True,
                       timeout=WAIT_S)


# -- a raw IRC connection -------------------------------------------------------------------

class RawIrc:
    """One IRC connection by hand, from `source` (any loopback address): send() lines,
    expect() a line (bounded), closed() once the server hung up."""

    def __init__(self, port, source="127.0.0.1"):
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S,
                                             source_address=(source, 0))
        self.received = []          # every line the server sent, in order
        self._seen = 0              # expect() looks only after the last match
        self._partial = b""
        self.eof = False

    def send(self, *lines):
        self.conn.sendall("".join(line + "\r\n" for line in lines).encode())

    def _read(self, timeout_s):
        ready, _, _ = select.select([self.conn], [], [], timeout_s)
        if not ready:
            return
        try:
            chunk = self.conn.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return
        *whole, self._partial = (self._partial + chunk).split(b"\r\n")
        self.received += [line.decode("utf-8", "replace") for line in whole]

    def expect(self, pattern, timeout_s=WAIT_S):
        """Wait for a line matching `pattern` (a regex) after the previous match -> the match."""
        end = time.monotonic() + timeout_s
        while True:
            for index in range(self._seen, len(self.received)):
                found = re.search(pattern, self.received[index])
                if found:
                    self._seen = index + 1
                    return found
            self._seen = len(self.received)
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"the server never sent {pattern!r}; it sent:\n"
                                     + "\n".join(self.received))
            self._read(min(left, 0.5))

    def closed(self, timeout_s=WAIT_S):
        """Wait until the server hangs up -> True."""
        end = time.monotonic() + timeout_s
        while not self.eof and time.monotonic() < end:
            self._read(min(end - time.monotonic(), 0.5))
        return self.eof

    def close(self):
        self.conn.close()


def sasl_plain(user, password):
    """The AUTHENTICATE argument of SASL PLAIN for `user`."""
    return base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode()
