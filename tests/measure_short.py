"""The server's CPU per short-model direct message, measured inside one process:
python3 tests/measure_short.py [MESSAGES] [ROUNDS] [--profile]

Builds the server as server.py does (its store on disk, its log to a file, its own secrets, the
rate limits off as bench.py sets them) on a real reactor, and drives it with bench.py's own
short-model generator in the same process: 16 pairs, each sender with 256 messages in flight,
each message a connection of its own (the request, then bye), each receiver a listening port
that takes delivery connections and acknowledges. Only the server's passes are timed, as the
thread's user and system CPU (getrusage) around each, so the generator's work is left out and
the figure moves less than bench.py's on a busy machine. Each round also drives bench.py's
trivial ceiling server the same way (its CPU per connection). The generator's passes are timed
too, apart: in bench.py the ceiling is bound by the generator, so what a short direct message
costs it, against a ceiling connection, bounds the ratio as much as the server does. Prints the
medians of ROUNDS runs;
compare two checkouts by running each in turn, a few times. With --profile, the server's passes
run under cProfile and its top functions are printed (the figure is then cProfile's).
"""
import cProfile
import os
import pstats
import resource
import select
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench                                                       # noqa: E402
from measure_server import Server                                  # noqa: E402

PAIRS = 16
WINDOW = 256
CEILING_IN_FLIGHT = 64      # bench.py's ceiling_in_flight


class TrivialServer(bench.TrivialServer):
    """bench.py's ceiling server (accept, read one line, reply, close first), one pass at a
    time: what a connection costs a server whose whole work is that connection."""

    def wait_s(self):
        return None

    def pass_once(self):
        before = resource.getrusage(resource.RUSAGE_THREAD)
        super().pass_once(0)
        after = resource.getrusage(resource.RUSAGE_THREAD)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def thread_cpu_s():
    used = resource.getrusage(resource.RUSAGE_THREAD)
    return used.ru_utime + used.ru_stime


def run(server, loop, until, generator_s=None):
    """Server and generator passes, each when it has something to do, until until() ->
    the server's CPU seconds; the generator's are added to generator_s[0] if given."""
    server_fd, loop_fd = server.fileno(), loop.fileno()
    cpu_s = 0.0
    while not until():
        wait_s = server.wait_s()
        wait_s = 0.05 if wait_s is None else min(wait_s, 0.05)
        ready, _, _ = select.select([server_fd, loop_fd], [], [], wait_s)
        if server_fd in ready or not ready:
            cpu_s += server.pass_once()
        if loop_fd in ready:
            started_s = thread_cpu_s()
            loop.run_until(lambda: False, bench.clock())    # its due timers
            loop.dispatch(loop.poller.poll(0))
            if generator_s is not None:
                generator_s[0] += thread_cpu_s() - started_s
    return cpu_s


def one_round(messages, profiler):
    with tempfile.TemporaryDirectory() as workdir:
        accounts = "".join(f"{name} {password}\n"
                           for name, password in map(bench.account, range(1, 2 * PAIRS + 1)))
        server = Server(workdir, accounts, timeout_s=0)
        loop = bench.Loop()
        model = bench.ShortModel(loop, ("127.0.0.1", server.port))
        meter = bench.Meter()
        receivers = [model.session(*bench.account(n), model.inbox(meter))
                     for n in range(1, PAIRS + 1)]
        senders = [model.session(*bench.account(n), model.inbox(lambda lines: None))
                   for n in range(PAIRS + 1, 2 * PAIRS + 1)]
        logged = []
        for session in receivers + senders:
            session.login(lambda ok, taken_s: logged.append(ok))
        run(server, loop, lambda: len(logged) == 2 * PAIRS)
        assert all(logged), "a login failed"
        sending = [bench.Sender(s, (lambda seq, s=s, to=r.name: s.message(to, seq)), WINDOW, 1)
                   for s, r in zip(senders, receivers)]
        for sender in sending:
            sender.start()
        run(server, loop, lambda: meter.total >= messages // 4)        # warm up
        start = meter.total
        if profiler is not None:
            server.profiler = profiler
        passes, system_s = server.passes, server.system_s
        generator_s = [0.0]
        cpu_s = run(server, loop, lambda: meter.total >= start + messages, generator_s)
        passes = server.passes - passes
        delivered = meter.total - start
        server.profiler = None
        for sender in sending:
            sender.stop()
        run(server, loop, lambda: all(s.in_flight == 0 for s in sending))
        assert sum(s.errors for s in sending) == 0, "a message was refused"
        loop.close_all()
        server.reactor.close_all()
        server.log_file.close()
        print(f"  {delivered / passes:.1f} messages a pass, "
              f"{(server.system_s - system_s) / delivered * 1e6:.1f} us of each in the kernel",
              file=sys.stderr)
        return cpu_s / delivered * 1e6, generator_s[0] / delivered * 1e6


def ceiling_round(connections):
    """The trivial server's CPU per connection, driven as bench.py's ceiling scenario."""
    server = TrivialServer()
    loop = bench.Loop()
    done = [0]

    def start():
        bench._Call(loop, ("127.0.0.1", server.port), bench.CEILING_FRAME, finished)

    def finished(replies):
        assert replies, "a ceiling connection failed"
        done[0] += 1
        start()
    for _ in range(CEILING_IN_FLIGHT):
        start()
    run(server, loop, lambda: done[0] >= connections // 4)          # warm up
    start_count = done[0]
    generator_s = [0.0]
    cpu_s = run(server, loop, lambda: done[0] >= start_count + connections, generator_s)
    completed = done[0] - start_count
    loop.close_all()
    server.close()
    return cpu_s / completed * 1e6, generator_s[0] / completed * 1e6


def main():
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    messages = int(args[0]) if args else 20000
    rounds = int(args[1]) if len(args) > 1 else 3
    profiler = cProfile.Profile() if "--profile" in sys.argv else None
    per_message_us, per_connection_us = [], []
    generator_message_us, generator_connection_us = [], []
    for _ in range(rounds):         # alternately, so both see the same minutes of the machine
        server_us, generator_us = one_round(messages, profiler)
        per_message_us.append(server_us)
        generator_message_us.append(generator_us)
        server_us, generator_us = ceiling_round(messages)
        per_connection_us.append(server_us)
        generator_connection_us.append(generator_us)
    message_us, connection_us = statistics.median(per_message_us), statistics.median(
        per_connection_us)
    # (in one process the trivial server costs less than under bench.py, where the ceiling
    # is bound by its generator: the quotient is the servers', not bench.py's ratio of rates)
    print(f"{message_us:.1f} us of server CPU per short direct message, {connection_us:.1f} per "
          f"connection of the trivial server ({connection_us / message_us:.2f} of it) (medians "
          f"of {rounds}: {', '.join(f'{us:.1f}' for us in per_message_us)}; "
          f"{', '.join(f'{us:.1f}' for us in per_connection_us)})")
    # bench.py's ratio is bound by whichever side is dearer: often the generator's client
    print(f"generator CPU: {statistics.median(generator_message_us):.1f} us per short direct "
          f"message, {statistics.median(generator_connection_us):.1f} per ceiling connection")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
