"""The command-line values both programs check (options.py)."""
import argparse
import os

import pytest

import client
import options
import server


@pytest.mark.parametrize("word", ["inf", "nan", "0", "-1", "soon"])
def test_seconds_must_be_finite_and_positive(word):
    with pytest.raises(argparse.ArgumentTypeError):
        options.seconds(word)


def test_ports_counts_and_rates():
    assert options.port("4119") == 4119 and options.any_port("0") == 0
    for bad in ("0", "65536", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.port(bad)
    assert options.count("0") == 0 and options.rate("0.5") == 0.5
    for check, bad in ((options.count, "-1"), (options.rate, "inf"), (options.rate, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(bad)


def test_both_programs_refuse_an_endless_heartbeat_or_time_out(capsys):
    for parse, argv in ((client.parse_args, ["127.0.0.1", "4119", "--heartbeat", "inf"]),
                        (server.parse_args, ["4119", "--timeout", "inf"])):
        with pytest.raises(SystemExit) as exited:
            parse(argv)
        assert exited.value.code == 2
    assert "not a positive number of seconds" in capsys.readouterr().err


def test_the_server_raises_its_descriptor_limit_and_fits_its_connections_under_it(monkeypatch):
    import resource
    set_to = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: set_to.append(limits))
    lines = []
    assert server._fit_descriptors(10_000, lines.append) == 1024 - server.DESCRIPTOR_RESERVE
    assert set_to == [(1024, 1024)]
    assert lines == [f"--max-connections 10000 does not fit 1024 descriptors with a reserve of "
                     f"{server.DESCRIPTOR_RESERVE}: accepting at most "
                     f"{1024 - server.DESCRIPTOR_RESERVE}"]
    assert server._fit_descriptors(100, lines.append) == 100


def test_a_disk_too_small_for_the_byte_quota_and_sqlites_log_is_said_at_start(tmp_path):
    (tmp_path / "chat.sqlite3").write_bytes(b"x" * 4096)       # what the store holds counts
    (tmp_path / "other").write_bytes(b"x" * 4096)              # nothing else does
    room = os.statvfs(tmp_path)
    free = room.f_bavail * room.f_frsize
    # (margins of 64 MiB: other processes may write to this disk meanwhile)
    fits = free + 4096 - server.SQLITE_LOG_ROOM_BYTES - 64 * 1024 * 1024
    if fits > 0:
        assert server.disk_room_warning(str(tmp_path), fits) is None
    warning = server.disk_room_warning(str(tmp_path), free + 4096 + 64 * 1024 * 1024)
    assert warning.startswith(f"the disk under {tmp_path} has room for ")
    assert warning.endswith("give it room or lower --store-bytes")
    assert server.disk_room_warning(str(tmp_path / "gone"), 1) is None   # cannot tell: quiet
