"""Hashed passwords (passwords.py): scrypt entries, equal-cost checks, and `server.py passwd`."""
import io
import os

import pytest

import passwords
import server
from passwords import CredentialsError, load_credentials


def test_a_hash_verifies_its_password_only_and_salts_differ():
    stored = passwords.hash_password("s3cret ☃")
    assert stored.startswith("scrypt$") and len(stored.split("$")) == 3
    assert passwords.verify("s3cret ☃", stored)
    assert not passwords.verify("s3cret", stored)
    assert passwords.hash_password("s3cret ☃") != stored


def test_plain_entries_still_verify_and_malformed_hashes_never_match():
    assert passwords.verify("pw", "pw") and not passwords.verify("pw", "px")
    assert not passwords.verify("", "scrypt$zz$00")


@pytest.mark.parametrize("bad", ["scrypt$", "scrypt$00$00", "scrypt$" + "00" * 16 + "$abc",
                                 "scrypt$" + "00" * 16 + "$" + "00" * 31, "scrypt$a$b$c"])
def test_malformed_hashes_are_refused_when_the_file_loads(tmp_path, bad):
    path = tmp_path / "cred.txt"
    path.write_text(f"alice {bad}\n")
    with pytest.raises(CredentialsError, match="line 1: malformed hash"):
        load_credentials(path)


def test_a_name_with_a_control_character_is_refused_when_the_file_loads(tmp_path):
    path = tmp_path / "cred.txt"
    path.write_bytes("al\x1bice pw\n".encode())
    with pytest.raises(CredentialsError, match="line 1: not a valid user name"):
        load_credentials(path)
    path.write_text("a" * 65 + " pw\n")          # (a trial's was told nothing of the length)
    with pytest.raises(CredentialsError, match=r"line 1: not a valid user name \(1 to 64 "
                                               r"printable characters"):
        load_credentials(path)


def test_the_checker_costs_one_scrypt_for_known_unknown_plain_and_hashed(monkeypatch):
    calls = []
    real = passwords._scrypt
    monkeypatch.setattr(passwords, "_scrypt", lambda pw, salt: calls.append(salt) or real(pw, salt))
    checker = passwords.Checker({"plain": "pw", "hashed": passwords.hash_password("pw")})
    for name, password, expected in (("plain", "pw", True), ("hashed", "pw", True),
                                     ("hashed", "no", False), ("ghost", "pw", False)):
        calls.clear()
        assert checker.check(name, password) is expected
        assert len(calls) == 1


def test_set_password_replaces_one_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "cred.txt"
    path.write_text("# accounts\nalice pw-a\nbob pw-b")
    os.chmod(path, 0o640)
    assert passwords.set_password(str(path), "alice", "new one") is True
    assert passwords.set_password(str(path), "carol", "pw-c") is False
    lines = path.read_text().splitlines()
    assert lines[0] == "# accounts" and lines[2] == "bob pw-b" and lines[3].startswith("carol scrypt$")
    accounts = load_credentials(path)
    assert passwords.verify("new one", accounts["alice"]) and accounts["bob"] == "pw-b"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["cred.txt"]     # no temporary file left


def test_set_password_through_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    """(an operator's trial: the link became a file of its own, and the server's file, the
    link's target, went unchanged)"""
    (tmp_path / "etc").mkdir()
    real = tmp_path / "etc" / "accounts.txt"
    real.write_text("alice pw-a\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    passwords.set_password(str(link), "bob", "pw-b")
    assert link.is_symlink() and "bob" in load_credentials(real)
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["accounts.txt"]


def test_passwd_reads_a_piped_password_and_writes_a_hash(tmp_path):
    path = tmp_path / "cred.txt"
    out, err = io.StringIO(), io.StringIO()
    status = passwords.passwd_main(["dave", "--credentials", str(path)],
                                   io.StringIO("  pw d  \n"), out, err)
    # (and that a running server takes it at its next start: an operator's trial's new
    # user was "Wrong username." until then, unsaid)
    assert status == 0 and out.getvalue() == (
        f"added dave in {path} (hashed); the file is new\n"
        f"A server running on this file takes the change at its next start.\n")
    assert passwords.verify("pw d", load_credentials(path)["dave"])
    assert "pw d" not in path.read_text()
    err = io.StringIO()          # one longer than a login can carry is refused
    assert passwords.passwd_main(["erin", "--credentials", str(path)],
                                 io.StringIO("x" * 4001 + "\n"), io.StringIO(), err) == 1
    assert "no login can send" in err.getvalue() and "erin" not in load_credentials(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file away")
def test_passwd_as_root_keeps_the_files_owner_and_mode(tmp_path):
    """(root rewrote a file the server's account owned as root's own: the server could not
    read it at its next start, an operator's trial found)"""
    path = tmp_path / "cred.txt"
    path.write_text("alice pw-a\n")
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o600)
    out = io.StringIO()
    assert passwords.passwd_main(["alice", "--credentials", str(path)],
                                 io.StringIO("new one\n"), out, io.StringIO()) == 0
    assert out.getvalue().startswith(f"replaced alice in {path} (hashed)\n")
    stat = os.stat(path)
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (65534, 65534, 0o600)


def test_passwd_refuses_an_empty_password_a_bad_name_and_a_missing_user(tmp_path, capsys):
    path = str(tmp_path / "cred.txt")
    err = io.StringIO()
    assert passwords.passwd_main(["dave", "--credentials", path], io.StringIO("\n"),
                                 io.StringIO(), err) == 1
    assert "empty" in err.getvalue() and not os.path.exists(path)
    for argv in (["bad\x00name"], [], ["dave", "--convert"]):
        with pytest.raises(SystemExit) as stop:
            passwords.passwd_main(argv + ["--credentials", path], io.StringIO("pw\n"))
        assert stop.value.code == 2


def test_passwd_on_a_terminal_asks_twice_without_echo(tmp_path, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    answers = iter(["one", "two", "same", "same"])
    monkeypatch.setattr(passwords.getpass, "getpass", lambda prompt, stream: next(answers))
    path = str(tmp_path / "cred.txt")
    err = io.StringIO()
    assert passwords.passwd_main(["eve", "--credentials", path], Tty(), io.StringIO(), err) == 1
    assert "differ" in err.getvalue()
    assert passwords.passwd_main(["eve", "--credentials", path], Tty(), io.StringIO(), err) == 0
    assert passwords.verify("same", load_credentials(path)["eve"])


def test_convert_hashes_every_plain_line_in_place(tmp_path):
    path = tmp_path / "cred.txt"
    path.write_text("# c\nalice pw-a\nbob " + passwords.hash_password("pw-b") + "\n\ncarol pw-c\n")
    path.chmod(0o600)
    out = io.StringIO()
    assert passwords.passwd_main(["--convert", "--credentials", str(path)], None, out) == 0
    assert out.getvalue() == f"hashed 2 plain password(s) in {path}\n"
    accounts = load_credentials(path)
    assert all(passwords.is_hashed(stored) for stored in accounts.values())
    assert passwords.verify("pw-a", accounts["alice"]) and passwords.verify("pw-b", accounts["bob"])
    assert passwords.convert_file(str(path)) == 0


def test_passwd_says_when_others_can_read_the_file_and_keeps_its_mode(tmp_path):
    # (a security review's converted file left its hashes readable to all, unsaid)
    path = tmp_path / "cred.txt"
    path.write_text("alice pw-a\n")
    path.chmod(0o644)
    out = io.StringIO()
    assert passwords.passwd_main(["--convert", "--credentials", str(path)], None, out) == 0
    assert out.getvalue() == (f"hashed 1 plain password(s) in {path}; other users of this "
                              f"machine can read it (mode 0644): chmod 600 {path}, if the "
                              f"server runs as its owner\n")
    assert path.stat().st_mode & 0o777 == 0o644
    out = io.StringIO()
    assert passwords.passwd_main(["bob", "--credentials", str(path)], io.StringIO("pw-b\n"),
                                 out) == 0
    assert "other users of this machine can read it" in out.getvalue()
    # one others may change, and a name the shell would split (a re-attack's pasted the
    # command and changed two other files)
    spaced = tmp_path / "c 620.txt"
    spaced.write_text("alice pw-a\n")
    spaced.chmod(0o620)
    out = io.StringIO()
    assert passwords.passwd_main(["--convert", "--credentials", str(spaced)], None, out) == 0
    assert f"can change it (mode 0620): chmod 600 '{spaced}'," in out.getvalue()


def test_passwd_reports_a_file_it_cannot_write(tmp_path):
    err = io.StringIO()
    missing = str(tmp_path / "no" / "such" / "cred.txt")
    assert passwords.passwd_main(["--convert", "--credentials", missing], None, io.StringIO(),
                                 err) == 1
    assert "server.py passwd:" in err.getvalue()


def test_server_main_dispatches_passwd(tmp_path, monkeypatch):
    path = tmp_path / "cred.txt"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-f\n"))
    assert server.main(["passwd", "frank", "--credentials", str(path)]) == 0
    assert passwords.verify("pw-f", load_credentials(path)["frank"])


def test_a_failed_replace_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "cred.txt"
    path.write_text("alice pw-a\n")

    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(passwords.os, "replace", broken)
    err = io.StringIO()
    assert passwords.passwd_main(["alice", "--credentials", str(path)], io.StringIO("new\n"),
                                 io.StringIO(), err) == 1
    assert "disk full" in err.getvalue()
    assert path.read_text() == "alice pw-a\n" and [p.name for p in tmp_path.iterdir()] == ["cred.txt"]


def test_a_credentials_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad starts a UTF-8 file with one; the first name must not carry it."""
    path = tmp_path / "credential.txt"
    path.write_bytes("\ufeffcolumbia 116bway\nseas summerisover\n".encode("utf-8"))
    assert load_credentials(path) == {"columbia": "116bway", "seas": "summerisover"}
    passwords.set_password(str(path), "columbia", "new")    # the passwd command reads it too
    assert sorted(load_credentials(path)) == ["columbia", "seas"]


def test_a_credentials_line_past_the_limit_is_refused_not_read_without_end(tmp_path):
    """(a trial's --credentials /dev/zero, one endless line, was read until memory ran out)"""
    with pytest.raises(CredentialsError, match="line 1: longer than 65,536 characters"):
        load_credentials("/dev/zero")
    path = tmp_path / "credential.txt"
    path.write_text("seas " + "p" * (passwords.MAX_LINE_CHARS - 5) + "\ncolumbia 116bway")
    assert sorted(load_credentials(path)) == ["columbia", "seas"]   # at the limit: read


@pytest.mark.parametrize("argv, stdin", [
    (["--convert", "--credentials", "/dev/zero"], "pw\n"),
    (["newuser", "--credentials", "/dev/zero"], "pw\n"),
    (["newuser", "--credentials", "FILE"], "p" * 70_000 + "\n")])
def test_passwd_reads_no_endless_line_of_the_file_or_its_input(tmp_path, capsys, argv, stdin):
    """(a trial's passwd ran out of memory on /dev/zero, as the server did)"""
    path = tmp_path / "credential.txt"
    path.write_text("columbia 116bway\n")
    argv = [str(path) if arg == "FILE" else arg for arg in argv]
    assert passwords.passwd_main(argv, stdin=io.StringIO(stdin)) == 1
    assert "longer than 65,536 characters" in capsys.readouterr().err
    assert path.read_text() == "columbia 116bway\n"
