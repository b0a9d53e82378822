"""The server of server.py inside a measuring tool's own process (tests/measure_login.py,
measure_direct.py, measure_short.py): built as server.py builds it (its store on disk, its log
to a file, its own secrets, tokens bound to their host), the rate limits off as bench.py sets
them, on a real reactor; each pass timed alone as the thread's CPU (getrusage), so a tool that
plays clients in the same process leaves their work out. Floor is floor_server.py the same way."""
import os
import resource
import secrets

from chat_server import ChatServer, Settings
from floor_server import FloorServer
from heap import settle_collector
from passwords import load_credentials
from reactor import Reactor
from timers import RealClock
from server_glue import ServerGlue
from server_log import make_logger
from storage import Store


class Server:
    """`pass_once()` -> CPU seconds the pass took; `accounts` is the credential file's text."""

    def __init__(self, workdir, accounts, connections=20000, timeout_s=0.05, sync="full"):
        credentials = _credentials_file(workdir, accounts)
        clock = RealClock()
        self.log_file = open(os.path.join(workdir, "server.log"), "w")
        log = make_logger(clock, self.log_file)
        self.reactor = Reactor(clock, log=log)
        store = Store(os.path.join(workdir, "chat.sqlite3"), clock, sync=sync,
                      seq_floor=int(clock.wall() * 1_000_000), exclusive=True)
        settings = Settings(user_rate_per_s=0, address_rate_per_s=0, failed_logins_per_s=0,
                            tokens_bound_to_host=True)
        core = ChatServer(load_credentials(credentials), store, settings,
                          instance=secrets.token_hex(4))
        glue = ServerGlue(self.reactor, core, store, log, max_connections=connections,
                          max_per_address=connections)
        self.port = glue.listen("127.0.0.1", 0).port
        settle_collector()
        self.timeout_s = timeout_s  # a pass waits for events at most this long
        self.profiler = None        # a cProfile.Profile while one is wanted
        self.passes = 0
        self.system_s = 0.0         # of the passes' CPU, in the kernel

    def fileno(self):
        return self.reactor.fileno()

    def wait_s(self):
        return self.reactor.wait_s()

    def close(self):
        self.reactor.close_all()
        self.log_file.close()

    def pass_once(self):
        self.passes += 1
        before = resource.getrusage(resource.RUSAGE_THREAD)
        if self.profiler is not None:
            self.profiler.enable()
        self.reactor.run_once(timeout_s=self.timeout_s)
        if self.profiler is not None:
            self.profiler.disable()
        after = resource.getrusage(resource.RUSAGE_THREAD)
        self.system_s += after.ru_stime - before.ru_stime
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class Floor:
    """floor_server.py (bench.py's yardstick) as Server above: `pass_once()` -> its CPU seconds."""

    def __init__(self, workdir, accounts, timeout_s=0.05, sync="full"):
        self.floor = FloorServer(workdir, _credentials_file(workdir, accounts), sync)
        self.port = self.floor.port
        self.timeout_s = timeout_s

    def close(self):
        self.floor.close()

    def pass_once(self):
        before = resource.getrusage(resource.RUSAGE_THREAD)
        self.floor.serve_pass(self.timeout_s)
        after = resource.getrusage(resource.RUSAGE_THREAD)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _credentials_file(workdir, accounts):
    """Write `accounts` (a credential file's text) in `workdir` -> the file's path."""
    credentials = os.path.join(workdir, "credential.txt")
    with open(credentials, "w", encoding="utf-8") as out:
        out.write(accounts)
    return credentials


def numbered_accounts(count):
    """user0 .. user<count-1>, each with password<n>: the accounts the tools' clients use."""
    return "".join(f"user{n} password{n}\n" for n in range(count))

