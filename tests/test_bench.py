"""bench.py: a bounded smoke run of its tiny scenarios, and its pure helpers.

Nothing here asserts on speed: a benchmark is never a timed test. The runs check that each
scenario completes, that its JSON line is well formed, and that what it counts is consistent
(messages delivered, every acknowledged offline message kept, no false time-out).
"""
import errno
import json
import os
import socket
import subprocess
import sys

import pytest

import bench
from passwords import load_credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_LIMIT_S = 90     # a bound on a hung run, far above the few seconds a quick run takes


def _records(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _check_record(record, scenario, model="short"):
    assert record["scenario"] == scenario
    assert record["model"] == model
    assert record["rounds"] == len(record["every_round"]) >= 1
    assert record["figures"], "a record without figures"
    for name, value in record["figures"].items():
        assert value is None or isinstance(value, (bool, int, float)), (name, value)
    assert set(record["ratios"]) <= set(record["figures"])
    assert isinstance(record["plan"], dict)


def test_quick_run_as_a_program_writes_one_well_formed_json_line_per_scenario(tmp_path):
    out = tmp_path / "results.jsonl"
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench.py"), "--quick", "--scenario", "ceiling",
         "--scenario", "direct", "--output", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    assert run.returncode == 0, run.stderr
    # both models by default, and the ceiling (the machine's, not a model's) measured once;
    # "direct" names both variants: messages without a mid, and with one (as client.py's)
    ceiling, direct, direct_mid, stay_direct, stay_direct_mid = _records(out)
    _check_record(ceiling, "ceiling")
    _check_record(direct, "direct")
    _check_record(direct_mid, "direct-mid")
    _check_record(stay_direct, "direct", model="stay")
    _check_record(stay_direct_mid, "direct-mid", model="stay")
    assert ceiling["figures"]["conns_per_s"] > 0
    for record in (direct, direct_mid, stay_direct, stay_direct_mid):
        assert record["figures"]["deliveries_per_s"] > 0     # messages really arrived
        assert record["figures"]["errors"] == 0
        assert record["ceiling_conns_per_s"] == ceiling["figures"]["conns_per_s"]
        assert "vs_ceiling" in record["ratios"]["deliveries_per_s"]
        assert record["ratios"]["deliveries_per_s"]["target"] == "≥ 300k"
    assert stay_direct["figures"]["frames_per_delivery_conn"] is None   # no delivery connections
    # the table names every scenario and the figure ratios are printed
    assert "direct" in run.stdout and "deliveries_per_s" in run.stdout and "not met" in run.stdout


def test_quick_scenarios_in_process_complete_with_consistent_counts(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    names = ["login", "pingpong", "broadcast", "fanin", "offline", "idle"]
    argv = ["--quick", "--no-pin", "--rounds", "1", "--model", "short", "--output", str(out)]
    for name in names:
        argv += ["--scenario", name]
    assert bench.main(argv) == 0
    records = {record["scenario"]: record for record in _records(out)}
    # "offline" names both variants: group commit, and a commit per message; "pingpong" with
    # a sync per commit and without
    assert sorted(records) == sorted(["login", "pingpong", "pingpong-sync-normal", "broadcast",
                                      "fanin", "offline", "offline-each", "idle-12"])
    for name, record in records.items():
        _check_record(record, name)
    plan = bench.QUICK_PLAN
    assert records["login"]["figures"]["errors"] == 0
    assert records["login"]["figures"]["samples"] == plan.logins
    pingpong = records["pingpong"]["figures"]
    # one message in flight: each sent message is one sample, and a presence notice is none
    assert pingpong["samples"] == pingpong["sent"] == pingpong["received"] == plan.pingpong_count
    assert records["broadcast"]["figures"]["deliveries_per_s"] > 0
    fanin = records["fanin"]["figures"]
    # every fan-in request is one delivery: they keep pace only if the inbox acknowledges them
    # (the server holds back past a window of unacknowledged messages)
    assert fanin["deliveries_per_s"] >= 0.5 * fanin["requests_per_s"] > 0
    offline = records["offline"]["figures"]
    assert offline["acked"] > 0 and offline["durable"] is True
    assert offline["kept"] >= offline["acked"]
    idle = records["idle-12"]["figures"]
    assert idle["all_logged_in"] is True and idle["users_online"] == 12
    assert idle["false_timeouts"] == 0
    assert idle["heartbeats_per_s"] > 0      # heartbeats did flow, so no time-out is a real result
    assert "no ceiling in this run" in capsys.readouterr().err


def test_the_irc_model_joins_the_room_with_its_login(tmp_path):
    """Its logins wait for the room's NAMES: without a JOIN, the server's own came 3 s later
    (irc_glue.JOIN_WAIT_S), and 12 logins took 9 s."""
    out = tmp_path / "results.jsonl"
    assert bench.main(["--quick", "--no-pin", "--rounds", "1", "--model", "irc", "--scenario",
                       "login", "--output", str(out)]) == 0
    [record] = _records(out)
    assert record["figures"]["errors"] == 0 and record["figures"]["p50_ms"] < 1000


def test_a_server_started_elsewhere_is_targeted_with_port_and_pid(tmp_path):
    credentials = tmp_path / "accounts.txt"
    assert bench.main(["--write-credentials", str(credentials), "--quick"]) == 0
    server = bench.ServerProcess(
        [sys.executable, os.path.join(ROOT, "server.py"), "0", "--host", "127.0.0.1",
         "--credentials", str(credentials), "--data-dir", str(tmp_path / "data")],
        str(tmp_path / "server.log"))
    try:
        out = tmp_path / "results.jsonl"
        assert bench.main(["--quick", "--no-pin", "--scenario", "login", "--port",
                           str(server.port), "--server-pid", str(server.pid),
                           "--output", str(out)]) == 0
        short, stay = _records(out)
        _check_record(short, "login")
        _check_record(stay, "login", model="stay")
        for login in (short, stay):
            assert login["figures"]["errors"] == 0
            assert login["figures"]["server_cpu_pct"] is not None
    finally:
        assert server.stop() == 0     # bench left the server running


def test_a_server_that_cannot_start_is_an_error_with_its_log(tmp_path):
    with pytest.raises(RuntimeError, match="no-such-file"):
        bench.ServerProcess([sys.executable, os.path.join(ROOT, "server.py"), "0",
                             "--credentials", str(tmp_path / "no-such-file")],
                            str(tmp_path / "server.log"))


def test_an_unknown_scenario_or_plan_field_stops_with_the_choices():
    with pytest.raises(SystemExit, match="ceiling"):
        bench.chosen(bench.scenarios(bench.QUICK_PLAN), ["nope"])
    with pytest.raises(SystemExit, match="direct_window"):
        bench.with_overrides(bench.QUICK_PLAN, ["nope=3"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])


def test_idle_names_every_idle_size_and_others_match_exactly():
    plan = bench.DEFAULT_PLAN
    picked = bench.chosen(bench.scenarios(plan), ["idle", "login"])
    assert [s.name for s in picked] == ["login", "idle-1000", "idle-10000"]
    assert all(s.server_timeout_s == plan.idle_timeout_s for s in picked[1:])
    assert [s.name for s in bench.chosen(bench.scenarios(plan), ["idle-1000"])] == ["idle-1000"]
    assert len(bench.chosen(bench.scenarios(plan), [])) == 18
    # "floor" names the floor's scenarios, each run on floor_server.py (the sync normal one so)
    floors = bench.chosen(bench.scenarios(plan), ["floor"])
    assert [s.name for s in floors] == ["floor-login", "floor-pingpong",
                                        "floor-pingpong-sync-normal", "floor-direct",
                                        "floor-broadcast", "floor-fanin"]
    assert {s.server for s in floors} == {"floor"}
    assert [s.server_args for s in floors if s.server_args] == [("--sync", "normal")]


def test_overrides_keep_each_fields_type():
    plan = bench.with_overrides(bench.DEFAULT_PLAN,
                                ["direct_window=16", "window_s=1.5", "idle_sizes=10,20"])
    assert plan.direct_window == 16 and plan.window_s == 1.5 and plan.idle_sizes == (10, 20)


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert bench.percentile(values, 0.5) == 50
    assert bench.percentile(values, 0.99) == 99
    assert bench.percentile([7.0], 0.99) == 7.0
    assert bench.percentile([3, 1, 2], 1.0) == 3
    assert bench.percentile([], 0.5) is None


def test_latency_figures_summarise_samples():
    assert bench.latency_figures([1.0, 2.0, 3.0, 4.0]) == {"p50_ms": 2.0, "p90_ms": 4.0,
                                                            "p99_ms": 4.0, "samples": 4}
    tenths = [n / 10 for n in range(1, 101)]
    assert bench.latency_figures(tenths)["p90_ms"] == 9.0
    assert bench.latency_figures([]) == {"p50_ms": None, "p90_ms": None, "p99_ms": None,
                                         "samples": 0}


def test_medians_skip_missing_and_keep_flags_from_the_last_round():
    rounds = [{"rate": 1.0, "ok": True, "p99_ms": None},
              {"rate": 5.0, "ok": False, "p99_ms": 2.0},
              {"rate": 3.0, "ok": True, "p99_ms": 4.0}]
    assert bench.median_figures(rounds) == {"rate": 3.0, "ok": True, "p99_ms": 3.0}


def test_every_eighth_message_carries_its_send_time():
    plain = bench.message_text(1)
    stamped = bench.message_text(bench.STAMP_EVERY)
    assert bench.STAMP not in plain
    line = json.dumps({"type": "message", "from": "a", "text": stamped}).encode()
    before = bench.clock()
    [stamp] = bench.STAMPS.findall(line)
    assert 0 <= before - float(stamp) < 60
    assert bench.STAMPS.findall(json.dumps({"type": "message", "text": plain}).encode()) == []


def test_generated_credentials_load_as_the_server_loads_them(tmp_path):
    path = tmp_path / "credentials.txt"
    bench.write_credentials(path, 10000)
    passwords = load_credentials(path)
    assert len(passwords) == 10000
    assert passwords["user0001"] == "pw0001" and passwords["user10000"] == "pw10000"


def test_targets_say_at_least_or_at_most_and_whether_met():
    assert bench.target_ratio("login", "logins_per_s", 6000) == ("≥ 15k", 0.4, False)
    assert bench.target_ratio("direct", "p99_ms", 2.0) == ("≤ 4", 0.5, True)
    assert bench.target_ratio("idle-10000", "false_timeouts", 0) == ("≤ 0", None, True)
    assert bench.target_ratio("idle-1000", "false_timeouts", 3)[2] is False
    assert bench.target_ratio("idle-10000", "all_logged_in", False) == ("yes", None, False)
    assert bench.target_ratio("idle-1000", "all_logged_in", True) == ("yes", None, True)
    assert bench.target_ratio("direct", "errors", 0) is None
    assert bench.target_ratio("direct", "p99_ms", None) is None
    # ping-pong: 0.1 ms for a staying connection, 0.3 ms with a connection per message
    assert bench.target_ratio("pingpong", "p50_ms", 0.2, "stay") == ("≤ 0.1", 2.0, False)
    assert bench.target_ratio("pingpong-sync-normal", "p50_ms", 0.2, "short")[2] is True


def test_the_table_aligns_columns_and_leaves_out_bookkeeping():
    record = {"scenario": "direct",
              "figures": {"deliveries_per_s": 15000.0, "samples": 9, "durable": True,
                          "p99_ms": None},
              "ratios": {"deliveries_per_s": {"vs_ceiling": 0.4, "vs_floor": 0.52,
                                              "target": "≥ 900k", "vs_target": 0.0167,
                                              "met": False}}}
    lines = bench.format_table(bench.table_rows([record])).splitlines()
    assert lines[0].split() == ["scenario", "figure", "median", "x", "ceiling", "x", "floor",
                                "target", "x", "target"]
    assert lines[1].split() == ["direct", "deliveries_per_s", "15k", "0.4", "0.52", "≥", "900k",
                                "not", "met", "0.0167"]
    assert lines[2].split() == ["direct", "durable", "yes"]
    assert lines[3].split() == ["direct", "p99_ms", "-"]
    assert len(lines) == 4
    assert lines[1].index("15k") == lines[0].index("median")


def test_short_numbers():
    assert bench._short(1_760_000) == "1.76M"
    assert bench._short(12_000) == "12k"
    assert bench._short(0.25) == "0.25"
    assert bench._short(7) == "7"


def test_process_figures_come_from_proc_or_are_none():
    assert bench.process_rss_kb(os.getpid()) > 0
    assert bench.process_cpu_s(os.getpid()) >= 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert bench.process_rss_kb(gone.pid) is None
    assert bench.process_cpu_s(gone.pid) is None
    overflows = bench.listen_overflows()
    assert overflows is None or overflows >= 0


def test_cores_split_only_with_two_or_more(monkeypatch):
    monkeypatch.setattr(bench.os, "sched_getaffinity", lambda pid: {3})
    assert bench.split_cores() is None
    monkeypatch.setattr(bench.os, "sched_getaffinity", lambda pid: {5, 2, 7})
    assert bench.split_cores() == ({2}, {5})


def test_an_external_server_without_a_pid_reports_no_process_figures():
    server = bench.ExternalServer(4119)
    assert server.cpu_s() is None and server.rss_kb() is None and server.stop() is None


def test_profile_runs_the_server_under_cprofile_and_prints_where_its_time_goes(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--quick", "--no-pin", "--profile", "--scenario", "login",
                       "--output", str(tmp_path / "results.jsonl")]) == 0
    assert (tmp_path / "bench-profile-login-1.prof").exists()
    printed = capsys.readouterr().out
    assert "server profile, login" in printed and "Ordered by: internal time" in printed


class _FakeSender:
    def __init__(self):
        self.calls = []

    def message(self, to, seq):
        return f"message to {to}".encode()

    def call(self, requests, on_replies):
        self.calls.append(requests)
        on_replies([b'{"type":"ok","stored":false}'])


def test_pingpong_sends_the_next_message_only_when_a_message_arrives():
    pingpong = bench.PingPong(count=2)
    pingpong.sender, pingpong.to = _FakeSender(), "bob"
    pingpong.send_next()
    pingpong.delivered([b'{"type":"presence","user":"alice","online":true}'])
    assert (pingpong.sent, pingpong.latencies_ms) == (1, [])    # a notice is not the message
    pingpong.delivered([b'{"type":"message","from":"alice","text":"x"}'])
    assert pingpong.sent == 2 and len(pingpong.latencies_ms) == 1 and not pingpong.done()
    pingpong.delivered([b'{"type":"message","from":"alice","text":"x"}'])
    assert pingpong.sent == 2 and pingpong.done()                # no third message
    assert pingpong.sender.calls == [b"message to bob"] * 2 and pingpong.errors == 0


def test_pingpong_counts_a_refused_message_as_an_error():
    pingpong = bench.PingPong(count=1)
    pingpong.sender = _FakeSender()
    pingpong.sender.call = lambda requests, on_replies: on_replies(None)
    pingpong.send_next()
    assert pingpong.errors == 1


class _HeldSession:
    """A session whose calls wait until the test answers them."""

    def __init__(self):
        self.pending = []

    def call(self, requests, on_replies):
        self.pending.append((requests, on_replies))


class _SilentSession:
    """A user that logs in at once and whose replies never come (as behind a burst of
    deliveries); what it sends is kept in `sent`."""

    def __init__(self, name, sent):
        self.name, self.sent = name, sent

    def login(self, on_done):
        on_done(True, 0.0)

    def request(self, kind):
        return kind.encode()

    def call(self, requests, on_replies):
        self.sent.append(requests)


class _SilentModel:
    def __init__(self):
        self.sent = {}      # user -> what it sent

    def inbox(self, on_frames):
        return None

    def session(self, name, password, inbox):
        return _SilentSession(name, self.sent.setdefault(name, []))


def test_an_idle_users_next_heartbeat_is_armed_when_it_sends_not_when_the_reply_comes():
    """As client.py does: a reply late behind deliveries must not make the user fall silent
    (the server would time it out though it has read every request)."""
    model = _SilentModel()
    plan = bench.replace(bench.QUICK_PLAN, idle_timeout_s=0.3)     # a heartbeat each 0.1 s
    ctx = bench.Context(plan, bench.Loop(), bench.ExternalServer(0), model, "")
    figures = bench.scenario_idle(ctx, 3)
    assert figures["all_logged_in"] and figures["false_timeouts"] == 0
    # 0.6 s of running: one heartbeat only, before; about six now (fewer on a loaded machine)
    assert sorted(model.sent) == ["user0001", "user0002", "user0003"]
    assert all(len(sent) >= 3 and set(sent) == {b"heartbeat"} for sent in model.sent.values())


def test_a_sender_keeps_its_window_full_in_batches_and_counts_acks_and_errors():
    session = _HeldSession()
    sender = bench.Sender(session, lambda seq: b"r%d\n" % seq, window=4, batch=2)
    sender.start()
    assert [requests for requests, _ in session.pending] == [b"r1\nr2\n", b"r3\nr4\n"]
    _, answer = session.pending.pop(0)
    answer([b'{"type":"ok","stored":false}', b'{"type":"error","code":"blocked"}'])
    assert (sender.acked, sender.errors, sender.in_flight) == (1, 1, 4)
    assert session.pending[-1][0] == b"r5\nr6\n"           # the freed slots were refilled
    sender.stop()
    for _, answer in list(session.pending):
        answer(None)                                      # a failed connection: all its requests
    assert (sender.errors, sender.in_flight) == (5, 0)
    assert len(session.pending) == 2                      # nothing new after stop()


def test_a_sender_of_one_request_a_connection_counts_each_reply_alone():
    session = _HeldSession()
    sender = bench.Sender(session, lambda seq: b"r%d\n" % seq, window=3, batch=1)
    sender.start()
    assert [requests for requests, _ in session.pending] == [b"r1\n", b"r2\n", b"r3\n"]
    for reply in ([b'{"type":"ok","seq":1}'], [b'{"type":"error","code":"blocked"}'], None):
        _, answer = session.pending.pop(0)
        answer(reply)
    assert (sender.acked, sender.errors, sender.in_flight) == (1, 2, 3)
    assert [requests for requests, _ in session.pending] == [b"r4\n", b"r5\n", b"r6\n"]
    sender.stop()


def test_the_meter_counts_messages_only_while_counting_and_reads_their_send_times():
    meter = bench.Meter(stamp_reads=1)
    stamped = json.dumps({"type": "message", "text": bench.message_text(bench.STAMP_EVERY)})
    meter([stamped.encode()])
    assert (meter.total, meter.deliveries) == (1, 0)
    meter.counting = True
    meter([b'{"type":"presence","user":"a","online":true}', stamped.encode(),
                     b'{"type":"broadcast","from":"a","text":"x"}'])
    assert (meter.total, meter.deliveries, len(meter.latencies_ms)) == (3, 2, 1)
    assert 0 <= meter.latencies_ms[0] < 60_000
    meter([stamped.encode(), b'{"type":"message","from":"a","text":"y"}',
                     stamped.encode(), b'{"type":"presence","user":"b","online":false}'])
    assert (meter.total, meter.deliveries, len(meter.latencies_ms)) == (6, 5, 3)
    assert all(0 <= latency < 60_000 for latency in meter.latencies_ms)


def test_the_meter_counts_every_read_and_reads_the_send_times_of_one_in_stamp_reads():
    meter = bench.Meter(stamp_reads=3)
    meter.counting = True
    stamped = json.dumps({"type": "message", "text": bench.message_text(bench.STAMP_EVERY),
                          "seq": 1}).encode()
    for _ in range(7):
        meter([stamped, stamped])
    assert (meter.deliveries, len(meter.latencies_ms)) == (14, 4)     # reads 3 and 6
    assert bench.Meter().stamp_reads == bench.STAMP_READS > 1


def test_a_receivers_read_of_deliveries_only_is_counted_and_acknowledged_as_one_chunk():
    meter = bench.Meter(stamp_reads=1)
    meter.counting = True
    stamped = json.dumps({"type": "broadcast", "from": "a",
                          "text": bench.message_text(bench.STAMP_EVERY), "seq": 8},
                         separators=(",", ":")).encode()
    loop, line, server_end, _ = _staying_pair(meter)
    try:
        assert line.on_chunk == meter.on_chunk
        # a presence notice first, a line cut in two by the reads, and a stamped one
        server_end.sendall(b'{"type":"presence","user":"a","online":true}\n'
                           b'{"type":"broadcast","from":"a","text":"x","seq":6}\n'
                           b'{"type":"broadcast","from":"a","te')
        assert loop.run_until(lambda: meter.total == 1, bench.clock() + RUN_LIMIT_S)
        _sent(loop, line)
        assert server_end.recv(4096) == b'{"type":"ack","seq":6}\n'
        # and a reply to nothing this side asked, which is not a message
        server_end.sendall(b'xt":"y","seq":7}\n{"type":"ok","id":77}\n' + stamped + b"\n")
        assert loop.run_until(lambda: meter.total == 3, bench.clock() + RUN_LIMIT_S)
        _sent(loop, line)
        assert server_end.recv(4096) == b'{"type":"ack","seq":8}\n'
        assert (meter.deliveries, len(meter.latencies_ms)) == (3, 1)
        assert 0 <= meter.latencies_ms[0] < 60_000
    finally:
        server_end.close()
        loop.close_all()


def test_the_highest_seq_is_the_last_numbered_line_of_a_read():
    lines = [b'{"type":"message","seq":7}', b'{"type":"broadcast","text":"\\"seq\\":99","seq":8}',
             b'{"type":"presence","user":"a","online":true}']
    assert bench.highest_seq(lines, 3) == 8
    assert bench.highest_seq(lines, 9) == 9
    assert bench.highest_seq(lines[2:], 3) == 3


def test_quick_stay_model_scenarios_complete_with_consistent_counts(tmp_path):
    out = tmp_path / "results.jsonl"
    argv = ["--quick", "--no-pin", "--model", "stay", "--output", str(out)]
    for name in ["floor", "login", "pingpong", "broadcast", "fanin", "offline", "idle"]:
        argv += ["--scenario", name]
    assert bench.main(argv) == 0
    records = {record["scenario"]: record for record in _records(out)}
    for name, record in records.items():
        _check_record(record, name, model="stay")
    plan = bench.QUICK_PLAN
    for prefix in ("", "floor-"):      # the chat server, and the floor under the same load
        assert records[prefix + "login"]["figures"]["errors"] == 0
        assert records[prefix + "login"]["figures"]["samples"] == plan.logins
        pingpong = records[prefix + "pingpong"]["figures"]
        assert (pingpong["samples"] == pingpong["sent"] == pingpong["received"]
                == plan.pingpong_count)
        for name in ("broadcast", "fanin"):
            assert records[prefix + name]["figures"]["deliveries_per_s"] > 0
            assert records[prefix + name]["figures"]["errors"] == 0
    # each staying figure against its floor's, measured earlier in the same run
    for name, figure in (("login", "logins_per_s"), ("pingpong", "p50_ms"),
                         ("broadcast", "deliveries_per_s"), ("fanin", "deliveries_per_s")):
        ratio = records[name]["ratios"][figure]["vs_floor"]
        floor = records["floor-" + name]["figures"][figure]
        assert ratio == bench._rounded(records[name]["figures"][figure] / floor)
    offline = records["offline"]["figures"]
    assert offline["acked"] > 0 and offline["durable"] is True
    idle = records["idle-12"]["figures"]
    assert idle["all_logged_in"] is True and idle["false_timeouts"] == 0
    assert idle["heartbeats_per_s"] > 0


def _staying_pair(on_frames=None):
    """A _Staying connection and the test's end of it (a blocking socket); what it delivers
    goes to `on_frames`, or to the list returned."""
    listener = socket.create_server(("127.0.0.1", 0))
    loop = bench.Loop()
    delivered = []
    line = bench._Staying(loop, listener.getsockname(), on_frames or delivered.append)
    server_end, _ = listener.accept()
    listener.close()
    server_end.settimeout(RUN_LIMIT_S)
    return loop, line, server_end, delivered


def _sent(loop, line):
    """Run the loop until `line` has connected and written everything it queued."""
    assert loop.run_until(lambda: line.connected and not line.out, bench.clock() + RUN_LIMIT_S)


def test_a_staying_connection_matches_replies_in_order_and_acks_the_highest_seq_once_per_read():
    loop, line, server_end, delivered = _staying_pair()
    replies = []
    try:
        line.send(b'{"type":"heartbeat","id":1}\n{"type":"heartbeat","id":2}\n', replies.append)
        _sent(loop, line)
        assert server_end.recv(4096).count(b"\n") == 2
        # two numbered deliveries, a notice and both replies, in one read
        server_end.sendall(b'{"type":"message","from":"a","text":"t","seq":3}\n'
                           b'{"type":"ok","id":1}\n'
                           b'{"type":"presence","user":"a","online":true}\n'
                           b'{"type":"message","from":"a","text":"t","seq":5,"offline":true}\n'
                           b'{"type":"ok","id":2}\n')
        loop.run_until(lambda: replies and delivered, bench.clock() + RUN_LIMIT_S)
        _sent(loop, line)
        assert replies == [[b'{"type":"ok","id":1}', b'{"type":"ok","id":2}']]
        assert len(delivered) == 1 and len(delivered[0]) == 3    # replies are not deliveries
        assert server_end.recv(4096) == b'{"type":"ack","seq":5}\n'
        # a notice alone, or a seq already acknowledged, is not acknowledged again
        server_end.sendall(b'{"type":"message","from":"a","text":"t","seq":4}\n')
        loop.run_until(lambda: len(delivered) == 2, bench.clock() + RUN_LIMIT_S)
        _sent(loop, line)
        server_end.setblocking(False)
        with pytest.raises(BlockingIOError):
            server_end.recv(4096)
        # with nothing waiting, a reply to nothing is still not a delivery
        server_end.sendall(b'{"type":"ok","id":9}\n{"type":"message","from":"a","seq":6}\n')
        loop.run_until(lambda: len(delivered) == 3, bench.clock() + RUN_LIMIT_S)
        assert delivered[2] == [b'{"type":"message","from":"a","seq":6}']
    finally:
        server_end.close()
        loop.close_all()


def test_what_a_reads_replies_set_off_leaves_in_one_send_after_the_read():
    loop, line, server_end, _ = _staying_pair()
    queued_while_reading = []

    def answered(replies, n):
        # a Sender's way: each reply sends the next request at once
        line.send(b'{"type":"heartbeat","id":%d}\n' % (n + 3), lambda replies: None)
        queued_while_reading.append(bytes(line.out))
    try:
        for n in (1, 2, 3):
            line.send(b'{"type":"heartbeat","id":%d}\n' % n,
                      lambda replies, n=n: answered(replies, n))
        _sent(loop, line)
        assert server_end.recv(4096).count(b"\n") == 3
        server_end.sendall(b'{"type":"ok","id":1}\n{"type":"ok","id":2}\n{"type":"ok","id":3}\n')
        loop.run_until(lambda: len(queued_while_reading) == 3, bench.clock() + RUN_LIMIT_S)
        # nothing went while the read's replies were handled: each request waited in `out` ...
        assert [q.count(b"\n") for q in queued_while_reading] == [1, 2, 3]
        # ... and all three went when the read was done
        assert not line.out and not line.reading
        received = b""
        while received.count(b"\n") < 3:
            received += server_end.recv(4096)
        assert received == b"".join(b'{"type":"heartbeat","id":%d}\n' % n for n in (4, 5, 6))
    finally:
        server_end.close()
        loop.close_all()


def test_a_lost_staying_connection_fails_what_waits_and_what_is_sent_after():
    loop, line, server_end, delivered = _staying_pair()
    replies = []
    line.send(b'{"type":"heartbeat","id":1}\n', replies.append)
    _sent(loop, line)
    server_end.recv(4096)
    server_end.close()
    loop.run_until(lambda: replies, bench.clock() + RUN_LIMIT_S)
    line.send(b'{"type":"heartbeat","id":2}\n', replies.append)
    loop.run_until(lambda: len(replies) == 2, bench.clock() + RUN_LIMIT_S)
    assert replies == [None, None]
    loop.close_all()


def _short_call(loop, listener, payload):
    """A _Call to `listener`, its replies collected, and the listener's end of it."""
    replies = []
    call = bench._Call(loop, listener.getsockname(), payload, replies.append)
    server_end, _ = listener.accept()
    server_end.settimeout(RUN_LIMIT_S)
    return call, replies, server_end


def _answered_ok(loop, server_end, replies):
    """The listener's end answers ok and closes: the call hands that one reply on."""
    server_end.sendall(b'{"type":"ok"}\n')
    server_end.close()
    assert loop.run_until(lambda: replies, bench.clock() + RUN_LIMIT_S)
    assert replies == [[b'{"type":"ok"}']]


def test_a_short_call_sends_as_it_connects_and_waits_only_to_read():
    listener = socket.create_server(("127.0.0.1", 0))
    loop = bench.Loop()
    try:
        call, replies, server_end = _short_call(loop, listener, bench.CEILING_FRAME)
        # on loopback the handshake is done when connect returns: sent before any pass
        server_end.setblocking(False)
        assert server_end.recv(4096) == bench.CEILING_FRAME
        assert loop.watching(call.sock) == call._readable
        assert not call.sock.getblocking()
        _answered_ok(loop, server_end, replies)
    finally:
        listener.close()
        loop.close_all()


class _NotYetSocket(socket.socket):
    """A socket whose first send finds the connection not open yet (EAGAIN)."""

    refused = 0

    def send(self, data, *flags):
        if not _NotYetSocket.refused:
            _NotYetSocket.refused += 1
            raise BlockingIOError(11, "not connected yet")
        return super().send(data, *flags)


def test_a_short_call_not_connected_yet_sends_when_writable(monkeypatch):
    monkeypatch.setattr(_NotYetSocket, "refused", 0)
    monkeypatch.setattr(bench.socket, "socket", _NotYetSocket)
    listener = socket.create_server(("127.0.0.1", 0))
    loop = bench.Loop()
    try:
        call, replies, server_end = _short_call(loop, listener, bench.CEILING_FRAME)
        assert _NotYetSocket.refused == 1
        assert loop.watching(call.sock) == call._writable
        # writable at the first pass: sent, then waiting to read
        assert loop.run_until(lambda: loop.watching(call.sock) == call._readable,
                              bench.clock() + RUN_LIMIT_S)
        assert server_end.recv(4096) == bench.CEILING_FRAME
        _answered_ok(loop, server_end, replies)
    finally:
        listener.close()
        loop.close_all()


def test_the_loop_skips_a_socket_unwatched_earlier_in_the_same_batch_and_closes_the_rest():
    loop = bench.Loop()
    pairs = [socket.socketpair() for _ in range(2)]
    called = []

    def first_ready(events):
        called.append(events)
        for ours, _ in pairs:       # whichever comes first ends the other
            if loop.watching(ours) is not None:
                loop.unwatch(ours)
                ours.close()

    try:
        for ours, theirs in pairs:
            loop.watch(ours, bench.READ, first_ready)
            theirs.send(b"x")
        assert loop.run_until(lambda: called, bench.clock() + RUN_LIMIT_S)
        loop.run_for(0.0)
        assert called == [bench.READ]
        survivor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        loop.watch(survivor, bench.READ, first_ready)
        loop.close_all()
        assert survivor.fileno() == -1 and loop.watching(survivor) is None
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def _trivial_client(server, first):
    """A blocking client of the trivial server that has sent `first`."""
    client = socket.create_connection(("127.0.0.1", server.port), timeout=RUN_LIMIT_S)
    client.sendall(first)
    return client


def _serve_until(server, done):
    """Trivial server passes (bounded) until done()."""
    for _ in range(1000):
        if done():
            return
        server.pass_once(RUN_LIMIT_S / 1000)
    raise AssertionError("the trivial server never got there")


def test_the_trivial_server_answers_a_line_as_it_accepts_and_waits_for_one_in_parts():
    server = bench.TrivialServer()
    clients = []
    try:
        whole = _trivial_client(server, bench.CEILING_FRAME)
        split = _trivial_client(server, bench.CEILING_FRAME[:10])
        silent = _trivial_client(server, b"")
        clients += [whole, split, silent]
        _serve_until(server, lambda: len(server.waiting) == 2)  # the whole line: served at once
        assert whole.recv(4096) == bench.CEILING_REPLY and whole.recv(4096) == b""
        split.sendall(bench.CEILING_FRAME[10:])
        silent.close()      # gone without a line: closed unanswered, and forgotten
        _serve_until(server, lambda: not server.waiting)
        assert split.recv(4096) == bench.CEILING_REPLY and split.recv(4096) == b""
    finally:
        for client in clients:
            client.close()
        server.close()


def test_a_call_the_generator_has_no_descriptor_for_fails_counted_and_the_run_goes_on(
        monkeypatch):
    def no_descriptors(*args):
        raise OSError(errno.EMFILE, "Too many open files")
    loop = bench.Loop()
    before = bench._Call.out_of_descriptors
    monkeypatch.setattr(bench.socket, "socket", no_descriptors)
    replies = []
    bench._Call(loop, ("127.0.0.1", 9), b'{"type":"heartbeat"}\n', replies.append)
    assert replies == []                            # never called back from inside the call
    assert loop.run_until(lambda: replies == [None], bench.clock() + RUN_LIMIT_S)
    assert bench._Call.out_of_descriptors == before + 1
