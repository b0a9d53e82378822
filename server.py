"""The chat server: `python3 server.py PORT [options]` (or `make server PORT=4119`).

Reads the options and the accounts, opens the store, and runs the core (chat_server.py) on the
reactor through its glue (server_glue.py) until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
`python3 server.py passwd` manages hashed passwords instead (passwords.py).
"""
import argparse
import errno
import os
import resource
import secrets
import signal
import sqlite3
import ssl
import sys
import time

import certificate
import irc_wire
import options
import passwords
import protocol
from chat_server import ChatServer, Settings
from delivery_links import DELIVERY_SOCKETS
from heap import HeapTrimmer, settle_collector
from irc_glue import IrcFront
from irc_words import SERVICE
from reactor import FRAME_TIME_S, Reactor
from server_glue import MAX_CONNECTIONS, MAX_PER_ADDRESS, ServerGlue
from server_log import DRAIN_S, make_logger
from status import StatusLine
from timers import RealClock
from passwords import CredentialsError, load_credentials
from storage import SEQ_FLOOR_MAX, Store, StoreUnavailable
from store_files import RESCUED, make_directory
from words import plural


def _add_limit_options(parser):
    """The hardening limits (PROTOCOL.md, "Limits"); a rate of 0 turns that rate limit off."""
    limits_group = parser.add_argument_group("limits (PROTOCOL.md lists them; a rate of 0 is off)")
    add = limits_group.add_argument
    add("--frame-time", type=options.seconds, default=FRAME_TIME_S, metavar="S",
        help="seconds a connection has to send its first frame, and to finish any frame it "
             f"begins (default {FRAME_TIME_S:g})")
    add("--max-connections", type=options.positive_count, default=MAX_CONNECTIONS, metavar="N",
        help=f"accepted connections open at once; past it the newest of the address holding "
             f"the most is shed (default {MAX_CONNECTIONS}, lowered to fit the descriptor "
             f"limit)")
    add("--max-per-address", type=options.positive_count, default=MAX_PER_ADDRESS, metavar="N",
        help=f"accepted connections open at once from one address; past it new ones are "
             f"closed (default {MAX_PER_ADDRESS})")
    add("--user-rate", type=options.rate, default=Settings.user_rate_per_s, metavar="PER_S",
        help=f"requests a second per user (default {Settings.user_rate_per_s:g})")
    add("--user-burst", type=options.positive_count, default=Settings.user_burst, metavar="N",
        help=f"requests a user may send at once (default {Settings.user_burst})")
    add("--address-rate", type=options.rate, default=Settings.address_rate_per_s,
        metavar="PER_S",
        help=f"requests a second per address, not counting a logged-in user's (default "
             f"{Settings.address_rate_per_s:g})")
    add("--address-burst", type=options.positive_count, default=Settings.address_burst, metavar="N",
        help=f"requests an address may send at once (default {Settings.address_burst})")
    add("--failed-logins", type=options.rate, default=Settings.failed_logins_per_s * 60,
        metavar="PER_MIN",
        help="failed logins a minute per address, after as many at once (default "
             f"{Settings.failed_logins_per_s * 60:g})")
    add("--inbox-messages", type=options.positive_count, default=Settings.inbox_messages, metavar="N",
        help=f"messages that may wait for one user (default {Settings.inbox_messages})")
    add("--inbox-bytes", type=options.positive_count, default=Settings.inbox_bytes, metavar="N",
        help=f"bytes of messages that may wait for one user (default {Settings.inbox_bytes})")
    add("--store-messages", type=options.positive_count, default=Settings.store_messages, metavar="N",
        help=f"messages waiting in all, each recipient's copy counted "
             f"(default {Settings.store_messages})")
    add("--store-bytes", type=options.positive_count, default=None, metavar="N",
        help=f"bytes of messages the store keeps in all (default {Settings.store_bytes}, or a "
             f"third of the disk's room when that is less)")


def limit_settings(args):
    """The parsed limit options -> keyword arguments for Settings."""
    return dict(user_rate_per_s=args.user_rate, user_burst=args.user_burst,
                address_rate_per_s=args.address_rate, address_burst=args.address_burst,
                failed_logins_per_s=args.failed_logins / 60,
                failed_logins_burst=round(args.failed_logins), tokens_bound_to_host=True,
                inbox_messages=args.inbox_messages, inbox_bytes=args.inbox_bytes,
                store_messages=args.store_messages,
                store_bytes=Settings.store_bytes if args.store_bytes is None else args.store_bytes)


def parse_args(argv):
    """Command line -> argparse namespace; a bad option or port exits 2 with the usage."""
    parser = argparse.ArgumentParser(
        prog="server.py", description="The chat room server.",
        # (an operator's trial found no word of it here)
        epilog="server.py passwd USER [--credentials FILE] sets USER's password, hashed, in the "
               "accounts file (server.py passwd --help).")
    parser.add_argument("port", type=options.any_port,
                        help="TCP port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--credentials", default="credential.txt", type=options.file_name,
                        help="accounts file, one 'username password' per line (default credential.txt)")
    parser.add_argument("--data-dir", default="data",
                        help="directory for stored state: messages until acknowledged, block "
                             "lists, lockouts (default ./data)")
    parser.add_argument("--block-time", type=options.seconds, default=Settings.lockout_s,
                        help="seconds a name stays blocked after too many wrong passwords (default 30)")
    parser.add_argument("--timeout", type=options.seconds, default=Settings.timeout_s,
                        help="seconds without a heartbeat before a user is logged out (default 31)")
    parser.add_argument("--consent-time", type=options.seconds, default=Settings.consent_s,
                        help="seconds a getaddress waits for the target's answer (default 60)")
    parser.add_argument("--commit", choices=("pass", "each"), default="pass",
                        help="commit stored state once per loop pass (default), or after each "
                             "request: slower, for measuring what group commit buys")
    parser.add_argument("--sync", choices=("full", "normal"), default="full",
                        help="full (default): stored state is on the disk before any reply "
                             "says so; normal: it survives the server's crash but maybe not "
                             "a power cut, for about half the latency (storage.py)")
    parser.add_argument("--irc-port", type=options.any_port, metavar="PORT",
                        help="also take IRC clients on this port (irssi, WeeChat...), in the "
                             "same room with the same accounts (PROTOCOL.md, \"IRC\")")
    parser.add_argument("--irc-name", default="chat.server", metavar="NAME",
                        help="the server's name in IRC replies (default chat.server)")
    parser.add_argument("--irc-room", default="#chat", metavar="CHANNEL",
                        help="the IRC channel that is the room (default #chat)")
    parser.add_argument("--tls-cert", metavar="FILE", help="speak TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    _add_limit_options(parser)
    args = parser.parse_args(argv)
    if args.irc_port is not None and args.irc_port == args.port != 0:
        # (it was told another program listened there, when it was itself)
        parser.error(f"--irc-port {args.irc_port} is the chat port too: give it a port of its own")
    if not (args.irc_room.startswith("#") and irc_wire.nick_ok(args.irc_room[1:])):
        parser.error(f"--irc-room {args.irc_room!r} is no channel name: # and letters, say #chat")
    if len(args.irc_room) > irc_wire.CHANNELLEN:
        # (a trial's 450 characters left each message line 100 bytes of text at most)
        parser.error(f"--irc-room is longer than {irc_wire.CHANNELLEN} characters")
    name = args.irc_name
    if not (0 < len(name) <= 63
            and all(char.isascii() and (char.isalnum() or char in ".-") for char in name)):
        # (it is every IRC reply's source: a space in it broke each line)
        parser.error(f"--irc-name {args.irc_name!r} is no server name: letters, digits, dots "
                     f"and dashes, say chat.example.org")
    args.tls_context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            parser.error("--tls-cert and --tls-key go together")
        try:
            args.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            args.tls_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            # (one line, without the usage: the options were right, the files are not; so
            # status 1, as for an accounts file or data directory that cannot be used)
            parser.exit(1, f"server.py: cannot load the TLS certificate {args.tls_cert} and "
                           f"key {args.tls_key}: {exc}{_tls_files_hint(args)}\n")
    return args


def _tls_files_hint(args):
    """Which of the TLS files is wrong, in words: OpenSSL says "PEM lib" for either, and for a
    key that does not match its certificate (an operator's trial could not tell which). A
    file that cannot be read at all is said as such (a missing one was told "swapped?")."""
    for path in (args.tls_cert, args.tls_key):
        if not os.access(path, os.R_OK):
            return f" ({path} cannot be read: is the name right?)"
    try:
        ssl.create_default_context(cafile=args.tls_cert)
    except (OSError, ssl.SSLError):
        return f" ({args.tls_cert} does not hold a certificate in PEM: were the two swapped?)"
    return (f" (the certificate loads: {args.tls_key} holds no key in PEM, or not the key of "
            f"that certificate)")


# Descriptors kept from accepted connections: the listeners, the store's files, the standard
# streams; and, of the rest, those of the delivery connections that may be open at once
# (DELIVERY_SOCKETS, or half the rest under a low limit: a fixed 320 left one connection under
# a limit of 256, and one logged-in user shut everyone else out). Below MIN_DESCRIPTORS the
# server does not start.
DESCRIPTOR_BASE = 64
MIN_DESCRIPTORS = 128


class TooFewDescriptors(Exception):
    """The descriptor limit leaves too few for the server to serve anyone well."""


def _fit_descriptors(wanted, log):
    """Raise the soft descriptor limit to the hard one, and share what it allows past the base
    between accepted connections (at most `wanted`) and delivery connections open at once
    -> (connections the server may accept, delivery connections); TooFewDescriptors below
    MIN_DESCRIPTORS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log(f"cannot raise the descriptor limit from {soft} to {hard}: {exc}")
    if soft < MIN_DESCRIPTORS:
        raise TooFewDescriptors(f"the descriptor limit is {soft}; the server needs at least "
                                f"{MIN_DESCRIPTORS} (raise it with ulimit -n)")
    spare = soft - DESCRIPTOR_BASE
    deliveries = min(DELIVERY_SOCKETS, spare // 2)
    fits = spare - deliveries
    if wanted > fits:
        log(f"--max-connections {wanted} does not fit {soft} descriptors with "
            f"{DESCRIPTOR_BASE + deliveries} kept for the store, listeners and deliveries: "
            f"accepting at most {fits}")
        return fits, deliveries
    return wanted, deliveries


def irc_clashes(accounts):
    """-> the groups of account names that IRC's case folding makes one (sorted lists)."""
    by_folded = {}
    for name in accounts:
        by_folded.setdefault(irc_wire.fold(name), []).append(name)
    return [sorted(names) for _, names in sorted(by_folded.items()) if len(names) > 1]


def irc_unfit(accounts):
    """-> the account names (sorted) that cannot stand as IRC nicks: one with a comma, a dot,
    '!' or '@', or that starts with a digit or '#' (irc_wire.nick_ok), or the IRC port's
    service nick. Such a user cannot log in on the IRC port, and IRC users see their name
    garbled, or taken for another's (a trial's "fake!u@h" read as the nick "fake")."""
    return sorted(name for name in accounts
                  if not irc_wire.nick_ok(name) or irc_wire.fold(name) == SERVICE)


STORE_FILE = "chat.sqlite3"      # the store's file in the data directory

# What the disk needs besides the store's byte quota: SQLite's write-ahead log grows to 1,000
# pages (4 MiB) between checkpoints, and a pass's record and the file's own pages come on top
# (on a disk with less room the store checkpoints sooner: store_files.checkpoint_pages).
SQLITE_LOG_ROOM_BYTES = 8 * 1024 * 1024
MIN_FRAME_TIME_S = 1.0      # a --frame-time below this is warned of at the start
MIN_STORE_BYTES = 64 * 1024     # a quota fitted to a tiny disk is never smaller than this


def fitted_store_bytes(data_dir, asked):
    """The store's byte quota, `asked` with --store-bytes or None -> (the quota, a line to log
    or None). Asked for, it is kept, and said when the disk cannot hold it and SQLite's log
    (with what the store holds now): such a disk fills before the quota, and messages are
    answered unavailable until space returns. Not asked for, the default is lowered to a third
    of the disk's room when that is less, so the store is full (store_full) before the disk
    is: a full disk refuses logins too, and a trial's 2 MiB disk, full of messages for users
    away, stayed full for good, since none could log in to read them."""
    quota = Settings.store_bytes if asked is None else asked
    room = _disk_room(data_dir)
    if room is None or room >= (3 * quota if asked is None else quota + SQLITE_LOG_ROOM_BYTES):
        return quota, None
    mib = 1024 * 1024
    where = f"the disk under {data_dir} has room for {room / mib:.1f} MiB of store"
    if asked is None:
        # (lowered only below the log's room, the quota leapt from 88 to 256 MiB at 264 MiB
        # of room, where a full store would leave the log 8: a review's)
        fitted = max(MIN_STORE_BYTES, room // 3)
        return fitted, (f"{where}: the store keeps at most {fitted / mib:.1f} MiB of messages "
                        f"there (a third of it, for SQLite's log and the file's own pages), "
                        f"past which they are refused store_full; --store-bytes sets another "
                        f"quota, and more room keeps more once the server is restarted (the "
                        f"quota is fitted at the start)")
    return quota, (f"{where}, less than --store-bytes ({quota / mib:.1f} MiB) and "
                   f"{SQLITE_LOG_ROOM_BYTES // mib} MiB for SQLite's log: it fills before the "
                   f"quota, and messages are then answered unavailable until space returns, "
                   f"which a disk the store filled itself may never have (what readers "
                   f"acknowledge cannot be written either); give it room"
                   + (" or lower --store-bytes" if room > SQLITE_LOG_ROOM_BYTES else
                      " (the store keeps SQLite's log to an eighth of the room there)"))


def _disk_room(data_dir):
    """Bytes the store may have under `data_dir`: what it holds, and the disk's free room;
    None when that cannot be told."""
    try:
        stat = os.statvfs(data_dir)
        held = sum(entry.stat().st_size for entry in os.scandir(data_dir)
                   if entry.name.startswith(STORE_FILE) and RESCUED not in entry.name)
    except OSError:
        return None
    return held + stat.f_bavail * stat.f_frsize


def _first_few(names):
    """The first five of `names`, sorted, for a line of the log ("a, b, c, d, e, ...")."""
    return ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")


def _listen_hint(exc, port):
    """A listen that failed -> what to do about it, in words (or "")."""
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return " (ports below 1024 need root: choose one above)"
    if exc.errno == errno.EAFNOSUPPORT or "family" in str(exc.strerror):
        return " (the server listens on IPv4 addresses only: --host 127.0.0.1, say)"
    if exc.errno == errno.EADDRINUSE:
        return " (another program, or another server, listens there: choose another port)"
    return ""


def _listen(reactor, args):
    """Listen on the chat port and the IRC port (if asked), handlers still to come ->
    (listener, IRC listener or None), or None once the failure is told."""
    wanted = [(f"{args.host} port {args.port}", args.port)]
    if args.irc_port is not None:
        wanted.append((f"IRC port {args.irc_port}", args.irc_port))
    # what a client that forgot TLS reads from a TLS port, in its own protocol
    plaintext_replies = [protocol.encode(protocol.error("tls_required")),
                         irc_wire.line("", "ERROR", "Closing link: this port speaks TLS "
                                       "(connect with TLS, or to another port)")]
    listeners = []
    for (where, port), plaintext_reply in zip(wanted, plaintext_replies):
        try:
            listeners.append(reactor.listen(args.host, port, None, tls=args.tls_context,
                                            plaintext_reply=plaintext_reply))
        except OSError as exc:
            print(f"server.py: cannot listen on {where}: {exc.strerror}{_listen_hint(exc, port)}",
                  file=sys.stderr)
            for listener in listeners:
                listener.close()
            return None
    return listeners[0], (listeners[1] if len(listeners) > 1 else None)


def _open_store(args, clock):
    """The data directory's store, made if need be -> the Store, or None once the failure
    is told."""
    try:
        make_directory(args.data_dir)
        # numbers start above the wall clock in microseconds: a wiped or restored data
        # directory never gives a number a running client has seen (PROTOCOL.md)
        return Store(os.path.join(args.data_dir, STORE_FILE), clock, sync=args.sync,
                     seq_floor=int(clock.wall() * 1_000_000), exclusive=True)
    except (OSError, sqlite3.Error) as exc:
        why = exc
        store = os.path.join(args.data_dir, STORE_FILE)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            why = "another server is using it (its store stays locked while that one runs)"
        elif isinstance(exc, sqlite3.OperationalError) and any(
                words in str(exc) for words in ("disk I/O error", "unable to open", "readonly")):
            # (SQLite words a directory or file it may not write as if the disk had failed)
            why = f"{exc}: can this account write there, and {store} and its -wal?"
        elif os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
            why = "it is not a directory"
        elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            # (an operator's trial's was told "file is not a database", not which file)
            why = (f"{exc}: {store} is not a store of this server's (overwritten, or another "
                   f"program's file); restore it from a backup, or move it away (and its -wal "
                   f"beside it) to start a new store")
        elif isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc):
            # (a trial's file restored from a backup, without the log a later run left)
            why = (f"{exc}: the store's file {store} is damaged, or {store}-wal beside it is "
                   f"not its own write-ahead log (a file restored without the log it was "
                   f"copied with, or with another's). Restore both from one backup; the "
                   f"file and the log of one copy belong together")
        print(f"server.py: cannot open the data directory {args.data_dir}: {why}", file=sys.stderr)
        return None


def _start_warnings(args, clock, credentials, store, log, irc_listener):
    """Log what an operator should know at the start: a certificate near its end, accounts
    nobody or anybody can log in as, messages waiting for names no account has, the IRC port
    and its limits on names, a wrong clock."""
    if args.tls_cert:
        expiring = certificate.warning(args.tls_cert, clock.wall())
        if expiring:
            log(expiring)
    if not credentials:
        log(f"{args.credentials} has no accounts: nobody can log in")
    if args.timeout < 2 * protocol.MIN_HEARTBEAT_S:
        log(f"--timeout {args.timeout:g} s is too short for client.py, which heartbeats every "
            f"{protocol.MIN_HEARTBEAT_S:g} s at the most: its sessions may time out")
    if args.frame_time < MIN_FRAME_TIME_S:
        # (a trial's --frame-time 0.001 closed every connection too_slow, not a word said)
        log(f"--frame-time {args.frame_time:g} s is shorter than a frame may take to cross a "
            f"slow network (or a TLS handshake, or a person typing into nc): such connections "
            f"are closed too_slow before their first frame is read")
    for option, value, code in (("--store-bytes", args.store_bytes, "store_full"),
                                ("--inbox-bytes", args.inbox_bytes, "inbox_full")):
        if value < protocol.MAX_FRAME_BYTES:
            # (a trial's --store-bytes 1 refused every message, not a word at the start)
            log(f"{option} {value:,} is less than one long message may take "
                f"({protocol.MAX_FRAME_BYTES:,} bytes): such messages are always refused "
                f"{code}, and under a few hundred bytes, every message is")
    unguarded = passwords.open_accounts(credentials)
    if unguarded:
        # (named: a line meant to hold a password too, its separator mistyped, shows there)
        shown = _first_few(unguarded)
        log(f"{plural(len(unguarded), 'account')} need"
            f"{'s' if len(unguarded) == 1 else ''} no password (a name alone on a line of "
            f"{args.credentials}: {shown}): anyone may log in as "
            f"{'it' if len(unguarded) == 1 else 'them'}")
    plain = [name for name, stored in credentials.items()
             if stored is not passwords.OPEN and not passwords.is_hashed(stored)]
    may = passwords.others_may(args.credentials)
    if plain and may:
        # (an operator's trial started with the README's own sample passwords in a file any
        # user of the machine could read, and not a word; `passwd` said it, the start did not)
        log(f"{args.credentials} holds {plural(len(plain), 'plain password')} that other "
            f"users of this machine can {may}: chmod 600 it, or hash them (server.py passwd "
            f"--convert)")
    unusable = passwords.unusable_accounts(credentials)
    if unusable:
        shown = _first_few(unusable)
        have = "s have passwords" if len(unusable) > 1 else " has a password"
        log(f"{len(unusable)} account{have} longer than a login may send "
            f"({protocol.MAX_TEXT_CHARS:,} characters) in {args.credentials} ({shown}): "
            f"nobody can log in as {'them' if len(unusable) > 1 else 'it'}")
    unowned = {name: store.count_waiting(name) for name in store.names_waiting()
               if name not in credentials}
    if unowned:
        # (an account removed from the file: its messages go to whoever is given the name)
        shown = ", ".join(f"{name} ({count})" for name, count in sorted(unowned.items())[:5])
        log(f"messages wait for names that {args.credentials} does not have: {shown}"
            f"{', ...' if len(unowned) > 5 else ''}; kept, for whoever is given such a name")
    strangers = store.names_in_blocks() - credentials.keys()
    if strangers:
        # (a re-attack's removed account, given again, was still blocked by its old blockers)
        log(f"blocks name {plural(len(strangers), 'name')} that {args.credentials} does not "
            f"have ({_first_few(strangers)}): kept, for whoever is given such a name; each "
            f"user can still unblock them")
    full = [f"{option} {limit:,} ({held:,} {what})" for option, limit, held, what in (
        ("--store-messages", args.store_messages, store.count_all_waiting(), "wait"),
        ("--store-bytes", args.store_bytes, store.total[1], "bytes held"))
        if held >= limit]
    if full:
        # (an operator's trial restarted with a smaller quota: every message, to users online
        # too, was refused store_full, and nothing said why)
        log(f"the store already holds what {' and '.join(full)} allow: every message is "
            f"refused store_full until its users have read enough of what waits for them")
    if store.created:
        # (an operator's restart from another directory served a new, empty ./data, and only
        # the first line's path hinted at it)
        log(f"the data directory {os.path.abspath(args.data_dir)} held no store: a new, empty "
            f"one was made")
    if irc_listener is not None:
        secured = " (TLS)" if args.tls_context else ""
        log(f"IRC clients on {args.host}:{irc_listener.port}{secured}, room {args.irc_room}")
        for names in irc_clashes(credentials):
            log(f"accounts {' and '.join(names)} differ only in case, which IRC does not tell "
                f"apart: on the IRC port only one of them can log in")
        unfit = irc_unfit(credentials)
        if unfit:
            shown = _first_few(unfit)
            what = "names cannot be IRC nicks" if len(unfit) > 1 else "name cannot be an IRC nick"
            log(f"{len(unfit)} account {what} ({shown}): on the IRC port such a user "
                f"cannot log in, nor be written to, and IRC users may read the name as "
                f"another's; rename them (no comma, dot, '!', '@', '*' or '?', and not "
                f"starting with a digit, '#', '&', '$' or ':')")
    if clock.wall() * 1_000_000 > SEQ_FLOOR_MAX:
        log(f"the wall clock says {time.strftime('%Y', time.gmtime(clock.wall()))}: message "
            f"numbers start as if it were 2112 (check the clock)")


def main(argv=None):
    """Run the server until SIGINT, SIGTERM, SIGHUP or SIGQUIT (or run `passwd`); returns the
    exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["passwd"]:
        return passwords.passwd_main(argv[1:])
    _standard_streams_open()
    args = parse_args(argv)
    clock = RealClock()
    log = make_logger(clock)
    try:
        return _serve(args, clock, log)
    except KeyboardInterrupt:
        # (Ctrl-C before the loop takes the signal: waiting at the start for another server's
        # hold on the store, an operator's trial got a traceback)
        print("server.py: interrupted while starting", file=sys.stderr)
        return 130
    finally:
        log.drain(DRAIN_S)          # (the last lines, for a reader that stopped reading)


def _standard_streams_open():
    """A standard stream closed at the start (`2>&-`) is opened on /dev/null: else the first
    file or socket the server opens takes its number, and the log is written into that (a
    re-attack's went into the reactor's epoll descriptor, held back for ever)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)      # (the lowest free number: this one)


def _serve(args, clock, log):
    """Start, serve until a stopping signal, stop -> the exit status."""
    try:
        credentials = load_credentials(args.credentials)
    except CredentialsError as exc:
        print(f"server.py: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"server.py: cannot read the accounts file {os.path.abspath(args.credentials)}: "
              f"{exc.strerror} (--credentials FILE names another)", file=sys.stderr)
        return 1
    reactor = Reactor(clock, log=log, frame_time_s=args.frame_time)
    log.watch(reactor)
    # the ports before the data directory: a port another program holds ends the start with
    # nothing made or written there; what arrives waits in the kernel until the first pass,
    # when the listeners have their handlers
    listeners = _listen(reactor, args)
    if listeners is None:
        return 1
    listener, irc_listener = listeners
    try:
        max_connections, delivery_sockets = _fit_descriptors(args.max_connections, log)
    except TooFewDescriptors as exc:
        print(f"server.py: {exc}", file=sys.stderr)
        return 1
    # what the server writes (the store holds every waiting message's text) is its own
    # account's alone: an operator's trial read another user's messages as `nobody`
    os.umask(0o077)
    store = _open_store(args, clock)
    if store is None:
        return 1
    args.store_bytes, cramped = fitted_store_bytes(args.data_dir, args.store_bytes)
    settings = Settings(lockout_s=args.block_time, timeout_s=args.timeout,
                        consent_s=args.consent_time, **limit_settings(args))
    core = ChatServer(credentials, store, settings, instance=secrets.token_hex(4))
    glue = ServerGlue(reactor, core, store, log, commit_each=args.commit == "each",
                      max_connections=max_connections, first_frame_s=args.frame_time,
                      delivery_sockets=delivery_sockets, max_per_address=args.max_per_address,
                      irc_port=None if irc_listener is None else irc_listener.port)
    listener.handler = glue.accepted
    front = None
    if irc_listener is not None:
        front = irc_listener.handler = IrcFront(glue, credentials, args.irc_name,
                                                  args.irc_room, settings)

    def stop(signum):
        reactor.stop()          # (first: nothing after it, a log that fails say, may keep it up)
        log(f"stopping ({signal.Signals(signum).name})")

    # SIGHUP too: what closing the terminal or SSH session that started it sends; and SIGQUIT,
    # Ctrl-\ (an operator's trial saw it end the server without a word, acknowledgements
    # of the last second unwritten). One ignored when the server started stays ignored:
    # `nohup` ignores SIGHUP, a shell script's `&` SIGINT (an operator's trial's nohup'd
    # server stopped at the hang-up nohup was for)
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    kept_ignored = [signum for signum in stopping
                    if signal.getsignal(signum) is signal.SIG_IGN]
    reactor.on_signals(stop, signals=[signum for signum in stopping
                                      if signum not in kept_ignored])

    def ignored(signum):
        # (folded: a re-attack's storm of 80,000 wrote 8,215 lines)
        name = signal.Signals(signum).name
        glue.log_repeated((f"{name} ignored", None),
                          f"{name} ignored: it stops nothing, and reopens nothing (the log is "
                          f"standard error: README, \"The server log\", says how to rotate it)")

    # (their default ends the process at once, without its last commit or a word in the log:
    # log rotation's habit sends one)
    reactor.on_signals(ignored, signals=(signal.SIGUSR1, signal.SIGUSR2))
    HeapTrimmer(reactor)
    StatusLine(reactor, core, store, log, args.store_messages, args.store_bytes)
    secured = "TLS" if args.tls_context else "plain TCP: passwords cross the network in clear"
    accounts = plural(len(credentials), "account")
    log(f"listening on {args.host}:{listener.port} with {accounts} from "
        f"{os.path.abspath(args.credentials)}, data in {os.path.abspath(args.data_dir)} "
        f"(sync {args.sync}; {secured})")
    _start_warnings(args, clock, credentials, store, log, irc_listener)
    if kept_ignored:
        # said, or the operator's Ctrl-C or kill -INT did nothing without a word (a trial's)
        names = [signal.Signals(signum).name for signum in kept_ignored]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        one = len(kept_ignored) == 1
        works = next((signal.Signals(signum).name for signum in
                      (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
                      if signum not in kept_ignored), "SIGKILL, which skips its last commit")
        log(f"{listed} {'was' if one else 'were'} ignored when the server started (nohup, or "
            f"a script's `&`), and {'stays' if one else 'stay'} so: stop it with {works}")
    if cramped:
        log(cramped)
    settle_collector()
    reactor.run()
    listener.close()
    if irc_listener is not None:
        irc_listener.close()
        front.farewell("The server is shutting down")
    glue.farewell("the server is shutting down")
    reactor.close_all("server stopping")
    try:
        store.commit(acks_too=True)
    except StoreUnavailable as trouble:
        log(f"could not commit at the end ({trouble}): what was not committed was answered "
            f"unavailable, and its senders send it again")
    _rescue(store, args.data_dir, log)
    store.close()
    glue.repeated.flush()       # (folded lines' counts still waiting for their minute)
    glue.health.flush()
    glue.store_state.flush()
    log("stopped")
    return 0


def _rescue(store, data_dir, log):
    """A store whose file is not at its path (its data directory wiped, and the file not
    written again) is copied elsewhere before its last handle closes, and the log says where
    and what to do."""
    if not store.homeless:
        return
    copy = store.rescue()
    home = os.path.join(os.path.abspath(data_dir), STORE_FILE)
    if copy is None:
        log(f"the store is not at {home}, and no copy of it could be written anywhere: the "
            f"messages it held are lost")
        return
    log(f"the store is not at {home}: everything it held is copied to {copy}; to keep it, with "
        f"no server running, move it there, and move {home}-wal and {home}-shm out of the "
        f"directory if they are there (they are not the copy's; if a store is there now, "
        f"another server's, keep the one that holds the messages)")


if __name__ == "__main__":
    sys.exit(main())
