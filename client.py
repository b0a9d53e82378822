"""The chat client: `python3 client.py HOST PORT [options]` (or `make client HOST=... PORT=...`).

`run(args, screen, reactor)` is the one place a client is built, for the terminal and the
window alike: its listening port, its core (chat_client.py), its glue (client_glue.py), and the
staying link (stay.py) when asked for. The screen is the terminal (terminal.TerminalScreen) or,
with --gui, a window (gui_tk.TkScreen).

Run: python3 client.py HOST PORT [--heartbeat S] [--gui] [--stay-connected [--no-listen]]
"""
import argparse
import os
import resource
import signal
import socket
import ssl
import sys

import options
from chat_client import ChatClient, Settings
from client_glue import MAX_INCOMING, ClientGlue
from client_session import HEARTBEAT_S
from protocol import MIN_HEARTBEAT_S
from reactor import Reactor
from stay import StayLink
from terminal import Terminal, TerminalScreen, is_tty
from timers import RealClock

# descriptors the client holds of its own: the standard streams, the reactor's, the listener,
# the server's connections (a heartbeat's, a message's, the staying link) and a few peer links
OWN_DESCRIPTORS = 24
MIN_INCOMING = 4        # the server's delivery connection and a peer's link, at the least

def _heartbeat(text):
    value = options.seconds(text)
    if value < MIN_HEARTBEAT_S:
        raise argparse.ArgumentTypeError(f"a heartbeat is a request the server's rate limit "
                                         f"counts: at least {MIN_HEARTBEAT_S:g} s, not {text!r}")
    return value


def parse_args(argv):
    """Command-line words -> namespace (host resolved to an IPv4 address); exits 2 if bad."""
    parser = argparse.ArgumentParser(prog="client.py", description="The chat room client.")
    parser.add_argument("host", help="the server's name or IPv4 address")
    # (optional here, so that a missing one is said with what was meant: a reviewer's
    # `client.py 127.0.0.1:4119` was told only that the port is required)
    parser.add_argument("port", type=options.port, nargs="?", help="the server's port")
    parser.add_argument("--heartbeat", type=_heartbeat, default=HEARTBEAT_S, metavar="S",
                        help=f"seconds between heartbeats, {MIN_HEARTBEAT_S:g} or more (default "
                             f"{HEARTBEAT_S:g}; at most the server's time-out, which it says at "
                             f"login, less a second: 31 s by default)")
    parser.add_argument("--gui", action="store_true", help="open a window instead of the terminal")
    parser.add_argument("--verbose", action="store_true",
                        help="show diagnostics (refused connections, closed links) on a terminal "
                             "too; they always go to standard error when it is not a terminal")
    parser.add_argument("--tls", action="store_true",
                        help="speak TLS to the server (it must run with --tls-cert/--tls-key)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="trust the certificates in FILE (a self-signed server's cert.pem); implies --tls")
    parser.add_argument("--stay-connected", action="store_true",
                        help="keep one connection open for requests and deliveries, made again "
                             "if lost (works behind NAT or a firewall)")
    parser.add_argument("--no-listen", action="store_true",
                        help="with --stay-connected: open no listening port (no one can send "
                             "this client private messages)")
    args = parser.parse_args(argv)
    if args.port is None:
        parser.error("the server's port is missing"
                     + (_host_hint(args.host) or ": client.py HOST PORT"))
    if args.no_listen and not args.stay_connected:
        parser.error("--no-listen needs --stay-connected: otherwise the server delivers to the "
                     "listening port")
    args.tls_context = None
    if args.tls or args.cafile:
        try:
            args.tls_context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot use --cafile {args.cafile}: {exc}")
    try:
        # resolve once here: the reactor's connect would block the loop on every request
        args.address = socket.gethostbyname(args.host)
    except OSError:
        parser.error(f"cannot resolve host {args.host!r}{_host_hint(args.host, args.port)}")
    return args




def run(args, screen, reactor):
    """Build a client on `reactor` and run it on `screen` until it exits -> the exit code.

    The one place a client is built, for the terminal and the window alike: its listening
    port, its core (with a random id for its messages, fresh every run), its glue, and the
    staying link when asked for.
    """
    glue = ClientGlue(reactor, screen, (args.address, args.port), tls=args.tls_context,
                      server_name=args.host)
    # (what a listener holds is said only with one: --no-listen has none)
    glue.max_incoming = fit_descriptors(screen.log if not args.no_listen else lambda text: None)
    listener = open_listener(args, reactor, glue, screen.log)
    port = None if listener is None else listener.port
    glue.core = ChatClient(Settings(port, stay=args.stay_connected, heartbeat_s=args.heartbeat,
                                    scripted=getattr(screen, "scripted", False),
                                    server=f"{args.host}:{args.port}", check_server=True,
                                    tls=args.tls_context is not None, cafile=args.cafile))
    if args.stay_connected:
        glue.stay = StayLink(glue, (args.address, args.port), screen.log, tls=args.tls_context,
                             server_name=args.host, needed=glue.core.needs_link)
    # SIGHUP: the terminal window was closed; it logs out as Ctrl-C does, not at the time-out.
    # SIGQUIT, Ctrl-\: as the server takes it (it had ended a trial's client without a logout)
    reactor.on_signals(glue.on_signal, signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                                signal.SIGQUIT))
    try:
        screen.run(glue)
    finally:
        if listener is not None:
            listener.close()
    if glue.exit_reason:
        # the screen's own last words first: written before them, a trial's reason landed on
        # the half-typed line, which the terminal then said was not sent
        screen.finish()
        print(f"client.py: {glue.exit_reason}", file=sys.stderr)
    return glue.exit_code


def fit_descriptors(log):
    """Raise the soft descriptor limit to the hard one -> how many connections the listening
    port may hold at once: MAX_INCOMING, or half of what the limit leaves past the client's
    own (a stranger's flood held the 64 under a limit of 64, and no heartbeat could be sent:
    a trial's session timed out)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass        # (an unlimited hard limit, say: the soft one is what there is)
    fits = max(MIN_INCOMING, min(MAX_INCOMING, (soft - OWN_DESCRIPTORS) // 2))
    if fits < MAX_INCOMING:
        log(f"the descriptor limit is {soft}: the listening port holds at most {fits} "
            f"connections at once (raise it with ulimit -n)")
    return fits


def open_listener(args, reactor, glue, log):
    """Our listening port (for deliveries and peers), or None: with --no-listen, or when a
    staying client cannot bind one (it is reached on its connection; only peers miss it)."""
    if args.no_listen:
        return None
    try:
        return reactor.listen(facing(args.address, args.port), 0, glue.listening)
    except OSError as exc:
        if not args.stay_connected:
            raise
        log(f"cannot open a listening port ({exc.strerror}); no one can send private messages "
            f"to this client")
        return None


def facing(address, port):
    """Where the listening port listens: the loopback address a server on this machine is
    reached from (the server delivers to the address it sees, and so do peers it tells), so
    that such a client is not open to the network (a trial's listened on every interface);
    for a server elsewhere, every interface ("0.0.0.0"), so that a new address (a laptop
    moving to another network) still takes deliveries. Asked of the kernel's routes with a
    UDP socket, which sends nothing."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, port))
            source = probe.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    return source if source.startswith("127.") else "0.0.0.0"


def main(argv=None):
    """python3 client.py HOST PORT [--heartbeat S] [--gui] [--stay-connected [--no-listen]]"""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.gui:
        return _main_window(args)
    if sys.stdout is None:          # (started with `>&-`: a trial's traceback)
        if sys.stderr is not None:
            print("client.py: standard output is closed: there is nowhere to show the chat",
                  file=sys.stderr)
        return 2
    # a closed standard input (`<&-`) is an empty one: the run ends before any login
    stdin_fd = os.open(os.devnull, os.O_RDONLY) if sys.stdin is None else sys.stdin.fileno()
    stderr = None if sys.stderr is None else sys.stderr.buffer
    diagnostics = stderr if _diagnostics_wanted(args) else None
    with Terminal(stdin_fd, sys.stdout.buffer, diagnostics, warn=stderr) as terminal:
        reactor = Reactor(RealClock(), log=terminal.log)
        status = run(args, TerminalScreen(terminal, stdin_fd), reactor)
    # (a trial's output to a full disk, /dev/full, lost every line and exited 0)
    return max(status, 1) if terminal.out_failed else status


def _main_window(args):
    """client.py --gui: the same client, with a window for its screen."""
    try:
        import gui_tk   # tkinter is loaded only when a window is wanted
    except ImportError as exc:      # a Python built without Tk
        print(f"client.py: cannot open a window ({exc})", file=sys.stderr)
        return 1
    try:
        screen = gui_tk.TkScreen.open()
    except gui_tk.NoWindow as exc:  # no display
        print(f"client.py: cannot open a window ({exc})", file=sys.stderr)
        return 1
    screen.diagnostics = _diagnostics_wanted(args)
    return run(args, screen, Reactor(RealClock(), log=screen.log))


def _host_hint(host, given_port=None):
    """What a host that cannot be resolved may have meant, in words (or ""); `given_port`:
    the port given apart, if one was. Only a port that can be is suggested (a reviewer's
    `127.0.0.1:abc` was told to run `client.py 127.0.0.1 abc`)."""
    if "://" in host:
        return ": give the host's name or address alone, not a web address"
    trimmed = host.rstrip("/:")
    name, colon, port = trimmed.rpartition(":")
    if not colon and trimmed != host:       # ("127.0.0.1/", "127.0.0.1:")
        name, colon, port = trimmed, ":", ""
    if colon and ":" not in name:
        if not name:
            return ": the host is missing before the port"
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            port = ""
        # (a trial's 127.0.0.1:48000 was told the client speaks IPv4 only)
        return (f": give the host and the port apart, as in `client.py {name} "
                f"{given_port or port or 'PORT'}`")
    if ":" in host:
        # (an IPv6 address "cannot be resolved" by an IPv4 lookup: a trial's ::1 was told so)
        return ": this client speaks IPv4 only; give an IPv4 address or a name"
    return ""


def _diagnostics_wanted(args):
    """Diagnostics are for a log file or a curious user, not for everyone's screen."""
    return args.verbose or not is_tty(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
