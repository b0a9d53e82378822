"""The command-line values both programs check (options.py)."""
import argparse
import os
import sys
import types

import pytest

import client
import options
import passwords
import server
from realprocs import ROOT, WAIT_S
from storage import Store


@pytest.mark.parametrize("word", ["inf", "nan", "0", "-1", "soon", "1e308", "1000000001"])
def test_seconds_must_be_positive_and_at_most_about_31_years(word):
    """(1e308 passed as finite: every connection then failed on a timer's overflow)"""
    with pytest.raises(argparse.ArgumentTypeError):
        options.seconds(word)
    assert options.seconds("1e9") == 1e9


def test_a_cap_of_connections_is_1_or_more():
    """(--max-connections 0 started, then failed every connection; --max-per-address 0
    refused everyone)"""
    for flag in ("--max-connections", "--max-per-address"):
        with pytest.raises(SystemExit):
            server.parse_args(["4119", flag, "0"])
        assert getattr(server.parse_args(["4119", flag, "1"]), flag[2:].replace("-", "_")) == 1


@pytest.mark.parametrize("name", ["my server", "", "a" * 64, "chat:x", "sérveur"])
def test_an_irc_name_with_a_space_or_other_odd_character_is_refused(name, capsys):
    """(the name is every IRC reply's source: "my server" broke each line)"""
    with pytest.raises(SystemExit):
        server.parse_args(["4119", "--irc-name", name])
    assert "is no server name" in capsys.readouterr().err
    assert server.parse_args(["4119", "--irc-name", "chat.example-1.org"]).irc_name


@pytest.mark.parametrize("room, why", [("chat", "is no channel name"),
                                       ("#" + "r" * 50, "is longer than 50 characters")])
def test_an_irc_room_that_is_no_channel_or_too_long_is_refused(room, why, capsys):
    """(a trial's room of 450 characters left each message line 100 bytes of its text)"""
    with pytest.raises(SystemExit):
        server.parse_args(["4119", "--irc-room", room])
    assert why in capsys.readouterr().err
    assert server.parse_args(["4119", "--irc-room", "#" + "r" * 49]).irc_room


def test_ports_counts_and_rates():
    assert options.port("4119") == 4119 and options.any_port("0") == 0
    for bad in ("0", "65536", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.port(bad)
    assert options.count("0") == 0 and options.rate("0.5") == 0.5
    for check, bad in ((options.count, "-1"), (options.rate, "inf"), (options.rate, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(bad)
    for bad in ("0", "1e3", "-5", "x"):     # (1e3 was said to want "0 or more")
        with pytest.raises(argparse.ArgumentTypeError, match="1 or more"):
            options.positive_count(bad)


def test_an_empty_accounts_file_name_is_refused_as_such(capsys):
    """(`--credentials ''` was said as the working directory, missing)"""
    with pytest.raises(SystemExit) as exited:
        server.parse_args(["4119", "--credentials", ""])
    assert exited.value.code == 2
    assert "argument --credentials: an empty name names no file" in capsys.readouterr().err


def test_a_pipe_as_the_accounts_file_is_read_and_one_nobody_writes_is_not_waited_on(tmp_path):
    """(a trial's start on a named pipe nobody wrote hung without a word; `--credentials
    <(gpg -d ...)`, a pipe with a writer, is how an operator keeps passwords off the disk)"""
    pipe = tmp_path / "accounts"
    os.mkfifo(pipe)
    assert passwords.load_credentials(str(pipe)) == {}          # at once: nobody writes it
    reader, writer = os.pipe()
    os.write(writer, b"alice secret\n")
    os.close(writer)
    try:
        assert passwords.load_credentials(f"/proc/self/fd/{reader}") == {"alice": "secret"}
    finally:
        os.close(reader)


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
    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: set_to.append(limits))
    lines = []
    kept = server.DESCRIPTOR_BASE + server.DELIVERY_SOCKETS
    assert server._fit_descriptors(10_000, lines.append) == (4096 - kept,
                                                             server.DELIVERY_SOCKETS)
    assert set_to == [(4096, 4096)]
    assert lines == [f"--max-connections 10000 does not fit 4096 descriptors with {kept} kept "
                     f"for the store, listeners and deliveries: accepting at most "
                     f"{4096 - kept}"]
    assert server._fit_descriptors(100, lines.append) == (100, server.DELIVERY_SOCKETS)


@pytest.mark.parametrize("limit", [128, 256, 383])
def test_under_a_low_descriptor_limit_deliveries_take_half_of_what_is_spare_not_all(
        monkeypatch, limit):
    """(a fixed reserve of 320 left one connection under a limit of 256: one logged-in user
    shut everyone else out, a trial found)"""
    import resource
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limit, limit))
    accepted, connects = server._fit_descriptors(10_000, lambda line: None)
    spare = limit - server.DESCRIPTOR_BASE
    assert connects == spare // 2 and accepted == spare - spare // 2 >= 32


def test_under_too_low_a_descriptor_limit_the_server_does_not_start(tmp_path):
    import resource
    import subprocess
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "server.py"), "0", "--data-dir", str(tmp_path)],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100)),
        capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 1
    assert "the descriptor limit is 100; the server needs at least 128" in done.stderr


def test_a_disk_too_small_for_the_byte_quota_asked_for_and_sqlites_log_is_said_at_start(
        tmp_path):
    (tmp_path / "chat.sqlite3").write_bytes(b"x" * 4096)       # what the store holds counts
    (tmp_path / "other").write_bytes(b"x" * 4096)              # nothing else does
    room = os.statvfs(tmp_path)
    free = room.f_bavail * room.f_frsize
    # (margins of 64 MiB: other processes may write to this disk meanwhile)
    fits = free + 4096 - server.SQLITE_LOG_ROOM_BYTES - 64 * 1024 * 1024
    if fits > 0:
        assert server.fitted_store_bytes(str(tmp_path), fits) == (fits, None)
    asked = free + 4096 + 64 * 1024 * 1024
    quota, warning = server.fitted_store_bytes(str(tmp_path), asked)
    assert quota == asked                   # asked for: kept, and said
    assert warning.startswith(f"the disk under {tmp_path} has room for ")
    assert warning.endswith("give it room or lower --store-bytes")
    assert server.fitted_store_bytes(str(tmp_path / "gone"), 1) == (1, None)  # cannot tell


def test_the_default_quota_is_a_third_of_a_small_disks_room(tmp_path, monkeypatch):
    """(a trial's 2 MiB disk, full of messages for users away, stayed full for good: a full
    disk refuses logins, and nobody could log in to read them)"""
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(
        f_bavail=(3 * 2 ** 20) // 4096, f_frsize=4096))
    quota, said = server.fitted_store_bytes(str(tmp_path), None)
    assert quota == 2 ** 20 and "keeps at most 1.0 MiB of messages there" in said
    assert "more room keeps more once the server is restarted" in said     # (a trial's)
    default = server.Settings.store_bytes
    for room in (default + 10 * 2 ** 20, 3 * default - 4096):   # a third of it, all the way
        monkeypatch.setattr(os, "statvfs", lambda path, room=room: types.SimpleNamespace(
            f_bavail=room // 4096, f_frsize=4096))
        assert server.fitted_store_bytes(str(tmp_path), None)[0] == room // 3
    for room in (3 * default, 2 ** 40):
        monkeypatch.setattr(os, "statvfs", lambda path, room=room: types.SimpleNamespace(
            f_bavail=room // 4096, f_frsize=4096))
        assert server.fitted_store_bytes(str(tmp_path), None) == (default, None)


def test_the_irc_port_may_not_be_the_chat_port(capsys):
    with pytest.raises(SystemExit) as stop:
        server.parse_args(["4119", "--irc-port", "4119"])
    assert stop.value.code == 2
    assert "--irc-port 4119 is the chat port too" in capsys.readouterr().err
    assert server.parse_args(["0", "--irc-port", "0"]).irc_port == 0      # (each picks one)


def test_accounts_that_irc_folds_into_one_are_found():
    """(alice and ALICE: over IRC alice could never log in, and each try counted toward
    ALICE's lockout, an operator's trial found; the server says so at start)"""
    assert server.irc_clashes({"alice": "1", "ALICE": "2", "bob": "3", "Bob": "4",
                               "carol": "5"}) == [["ALICE", "alice"], ["Bob", "bob"]]
    assert server.irc_clashes({"alice": "1", "bob": "2"}) == []


def test_accounts_whose_names_cannot_be_irc_nicks_are_found():
    """(a trial's "fake!u@h" reached IRC users as the nick "fake"; "a,b" named two; "chat"
    was the service's)"""
    accounts = {"columbia": "1", "fake!u@h": "2", "a,b": "3", ":colon": "4", "Chat": "5",
                "john.doe": "6", "9lives": "7", "x[y]_-^`|": "8", "été": "9"}
    assert server.irc_unfit(accounts) == ["9lives", ":colon", "Chat", "a,b", "fake!u@h",
                                          "john.doe"]
    assert server.irc_unfit({"columbia": "1"}) == []


def test_a_data_directory_the_server_cannot_write_is_said_so(tmp_path):
    """(SQLite says "disk I/O error" or "unable to open database file" for a directory it may
    not write: an operator's trial read that as a failing disk)"""
    import subprocess
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "server.py"), "0", "--data-dir", "/proc/self",
         "--credentials", os.path.join(ROOT, "credential.txt")],
        capture_output=True, text=True, timeout=WAIT_S, cwd=str(tmp_path))
    assert done.returncode == 1
    assert "cannot open the data directory /proc/self" in done.stderr
    assert "can this account write there, and /proc/self/chat.sqlite3 and its -wal?" in (
        done.stderr)


def test_a_store_file_that_is_not_sqlite_s_is_named_at_the_refused_start(tmp_path):
    """(an operator's trial's garbage file was refused "file is not a database", not which)"""
    import subprocess
    data = tmp_path / "data"
    data.mkdir()
    (data / "chat.sqlite3").write_bytes(b"garbage, not a store" * 400)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "server.py"), "0", "--data-dir", str(data),
         "--credentials", os.path.join(ROOT, "credential.txt")],
        capture_output=True, text=True, timeout=WAIT_S, cwd=str(tmp_path))
    assert done.returncode == 1
    assert (f"{data / 'chat.sqlite3'} is not a store of this server's (overwritten, or another "
            f"program's file)") in done.stderr


def test_a_file_restored_beside_a_later_log_is_refused_before_anything_is_written(tmp_path):
    """(a trial's backup of the file, put back beside the log a later run's kill -9 left:
    "database disk image is malformed", and nothing to act on)"""
    import shutil
    import subprocess
    data = tmp_path / "data"
    data.mkdir()
    store = str(data / "chat.sqlite3")
    Store(store).close()                            # stopped: the file whole, no log
    shutil.copy(store, tmp_path / "backup")
    subprocess.run([sys.executable, "-c", f"""if 1:
        import os, sys
        sys.path.insert(0, {ROOT!r})
        from storage import Store
        store = Store({store!r})
        for n in range(1500):       # past SQLite's 1,000 pages: some copied into the file
            store.keep(["bob"], b'{{"type":"message","from":"a","text":"%s"' % (b"x" * 3000))
            store.commit()
        os._exit(0)     # as a kill -9: the rest stays in the log, not copied into the file"""],
                   check=True, timeout=WAIT_S)
    shutil.copy(tmp_path / "backup", store)         # the file alone put back
    before = [open(name, "rb").read() for name in (store, store + "-wal")]
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "server.py"), "0", "--data-dir", str(data),
         "--credentials", os.path.join(ROOT, "credential.txt")],
        capture_output=True, text=True, timeout=WAIT_S, cwd=str(tmp_path))
    assert done.returncode == 1
    assert f"the write-ahead log {store}-wal is not the log of the file {store}" in done.stderr
    assert "nothing was written" in done.stderr and "Restore the file and its log" in done.stderr
    # refused before anything was written (a trial's start changed the file, deleted the log)
    assert [open(name, "rb").read() for name in (store, store + "-wal")] == before


def test_a_missing_accounts_file_is_named_with_where_it_was_looked_for(tmp_path):
    import subprocess
    done = subprocess.run([sys.executable, os.path.join(ROOT, "server.py"), "0"],
                          capture_output=True, text=True, timeout=WAIT_S, cwd=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == (f"server.py: cannot read the accounts file {tmp_path}/credential.txt: "
                           f"No such file or directory (--credentials FILE names another)\n")


@pytest.mark.parametrize("key_there, hint", [
    (True, "cert.pem does not hold a certificate in PEM"),
    (False, "key.pem cannot be read: is the name right?")])     # (it said "swapped?")
def test_tls_files_that_cannot_be_loaded_are_named_in_one_line(tmp_path, capsys, key_there, hint):
    (tmp_path / "cert.pem").write_text("not a certificate")
    if key_there:
        (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(SystemExit) as exited:
        server.parse_args(["4119", "--tls-cert", str(tmp_path / "cert.pem"),
                           "--tls-key", str(tmp_path / "key.pem")])
    assert exited.value.code == 1       # as other files that cannot be used (2: a bad option)
    err = capsys.readouterr().err
    assert err.startswith(f"server.py: cannot load the TLS certificate {tmp_path}/cert.pem and "
                          f"key {tmp_path}/key.pem: ") and err.count("\n") == 1
    assert hint in err


def test_a_tls_key_that_is_not_the_certificates_is_named(tmp_path, capsys):
    """OpenSSL says "PEM lib" for either file (an operator's trial could not tell which)."""
    from certs import make_certificate
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    cert, _ = make_certificate(tmp_path / "one")
    _, other_key = make_certificate(tmp_path / "two")
    with pytest.raises(SystemExit):
        server.parse_args(["4119", "--tls-cert", str(cert), "--tls-key", str(other_key)])
    assert f"the certificate loads: {other_key} holds no key in PEM, or not the key of that " \
           "certificate" in capsys.readouterr().err


@pytest.mark.parametrize("variable, option", [
    ("STAY=1", "--stay-connected"), ("STAY=0", None), ("STAY=", None), ("STAY=false", None),
    ("IRC=6667", "--irc-port 6667"), ("IRC=0", None), ("IRC=false", None),
])
def test_the_makefiles_switches_turn_on_with_a_value_and_off_with_0(variable, option):
    """`make client STAY=0` turned --stay-connected on (a trial's)."""
    import pathlib
    import subprocess
    root = pathlib.Path(__file__).resolve().parent.parent
    target = "client" if variable.startswith("STAY") else "server"
    said = subprocess.run(["make", "-s", "-n", "-C", str(root), target, variable],
                          capture_output=True, text=True, timeout=30).stdout
    flag = "--stay-connected" if target == "client" else "--irc-port"
    assert (option in said) if option else (flag not in said), said


def test_make_cert_names_the_host_and_never_overwrites_a_key(tmp_path):
    """(an operator's trial: `make cert` made a certificate for localhost only, with no way to
    name the server's host, and a second run overwrote the key every client's cert.pem copy
    was made for)"""
    import pathlib
    import shutil
    import subprocess
    if shutil.which("openssl") is None or shutil.which("make") is None:
        pytest.skip("openssl and make are needed to make a certificate")
    root = pathlib.Path(__file__).resolve().parent.parent
    shutil.copy(root / "Makefile", tmp_path / "Makefile")
    made = subprocess.run(["make", "-s", "cert", "NAME=chat.example.edu"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    names = subprocess.run(["openssl", "x509", "-in", "cert.pem", "-noout", "-ext",
                            "subjectAltName"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=30).stdout
    assert "DNS:chat.example.edu" in names and "127.0.0.1" in names
    before = (tmp_path / "key.pem").read_bytes()
    again = subprocess.run(["make", "-s", "cert"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode != 0 and "already" in again.stdout + again.stderr
    assert (tmp_path / "key.pem").read_bytes() == before


def test_the_servers_help_names_the_passwd_command(capsys):
    """(an operator's trial found no word of `server.py passwd` in --help)"""
    import server
    with pytest.raises(SystemExit):
        server.parse_args(["--help"])
    assert "server.py passwd USER" in capsys.readouterr().out
