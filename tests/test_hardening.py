"""Issue 6 in the cores: every bad input gets its own error code and one log line, limits answer
slow_down, and a well-behaved user is served all the while. No sockets, no clock: time is `now`."""
import pytest

import passwords
from client_events import (Arm as ClientArm, Exit, Expired, Incoming, Log as ClientLog,
                           LoginRetry, OutboxRetry, Started)
from client_helpers import OK, WELCOME, Run, err, logged_in, printed, requests
from chat_server import ChatServer, Settings
from server_events import (Arm, BadFrame, Expired as ServerExpired, IdleCheck, Log, Reply,
                           Request)
from storage import Store

ACCOUNTS = {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"}
GOOD_HOST, BAD_HOST = "10.0.0.1", "10.0.0.66"


class Chat:
    """A server core with alice logged in from GOOD_HOST; `good()` proves she is still served."""

    def __init__(self, settings=Settings(tokens_bound_to_host=True), accounts=ACCOUNTS):
        self.store = Store(":memory:")
        self.server = ChatServer(dict(accounts), self.store, settings)
        self.now = 0.0
        self.alice = self.login("alice", "pw-a", GOOD_HOST)["token"]

    def send(self, frame, host=BAD_HOST, conn=9):
        return self.server.handle(Request(conn, frame, host), self.now)

    def reply(self, frame, host=BAD_HOST):
        [answer] = [a.frame for a in self.send(frame, host) if isinstance(a, Reply)]
        return answer

    def login(self, user, password, host):
        return self.reply({"type": "login", "user": user, "password": password, "port": 4000}, host)

    def good(self):
        """alice, at her own address, sends a message to bob, and it is stored until bob acks it."""
        before = self.store.count_waiting("bob")
        answer = self.reply({"type": "message", "token": self.alice, "to": "bob", "text": "hi"},
                            GOOD_HOST)
        assert answer["type"] == "ok"
        assert self.store.count_waiting("bob") == before + 1


def logs(actions):
    return [a.text for a in actions if isinstance(a, Log)]


# -- bad input: one code each, one log line each --------------------------------------------

@pytest.mark.parametrize("code", ["bad_utf8", "bad_json", "not_object", "too_long"])
def test_a_frame_that_cannot_be_decoded_gets_its_code_and_one_log_line(code):
    chat = Chat()
    actions = chat.server.handle(BadFrame(9, BAD_HOST, code), chat.now)
    assert [a.frame["code"] for a in actions if isinstance(a, Reply)] == [code]
    assert logs(actions) == [f"refused frame from conn 9 at {BAD_HOST}: {code}"]
    chat.good()


@pytest.mark.parametrize("frame, code", [
    ({"type": "teleport"}, "unknown_type"),
    ({"type": "check_user"}, "bad_field"),
    ({"type": "check_user", "user": 7}, "bad_field"),
    ({"type": "login", "user": "alice", "password": "pw-a", "port": "4000"}, "bad_field"),
    ({"type": "check_user", "user": "al\x00ice"}, "bad_field"),
    ({"type": "check_user", "user": "alice\x1b[2J"}, "bad_field"),
    ({"type": "login", "user": "al\u202eice", "password": "pw-a", "port": 1}, "bad_field"),
    ({"type": "check_user", "user": "x" * 100_000}, "bad_field"),
    ({"type": "heartbeat"}, "no_session"),
    ({"type": "heartbeat", "token": 5}, "bad_field"),
    ({"type": "heartbeat", "token": "forged-token"}, "no_session"),
])
def test_each_bad_request_gets_its_code_and_one_log_line(frame, code):
    chat = Chat()
    actions = chat.send(frame)
    assert [a.frame["code"] for a in actions if isinstance(a, Reply)] == [code]
    assert len(logs(actions)) == 1
    assert "\x00" not in logs(actions)[0] and "\x1b" not in logs(actions)[0]
    chat.good()


def test_a_control_character_in_a_recipient_is_bad_field_not_unknown_user():
    chat = Chat()
    frame = {"type": "message", "token": chat.alice, "to": "bob\x00", "text": "x"}
    assert chat.reply(frame, GOOD_HOST)["code"] == "bad_field"


@pytest.mark.parametrize("notice", ["yes", 1, 0, None, [True]])
def test_a_notice_flag_is_true_or_false_or_the_message_is_refused(notice):
    chat = Chat()
    for frame in ({"type": "message", "token": chat.alice, "to": "bob", "text": "x"},
                  {"type": "broadcast", "token": chat.alice, "text": "x"}):
        answer = chat.reply({**frame, "notice": notice}, GOOD_HOST)
        assert (answer["code"], answer["message"]) == ("bad_field",
                                                       "'notice' must be true or false")
        assert chat.reply({**frame, "notice": False}, GOOD_HOST)["type"] == "ok"
    chat.good()


def test_a_request_before_login_gets_no_session():
    chat = Chat()
    answer = chat.reply({"type": "message", "to": "bob", "text": "hi"})
    assert (answer["code"], answer["message"]) == (
        "no_session", "log in first: this request needs a session token")
    chat.good()


def test_an_expired_token_gets_no_session():
    chat = Chat()
    bob = chat.login("bob", "pw-b", BAD_HOST)["token"]
    chat.now = 31.0         # the check's time
    chat.server.handle(ServerExpired(IdleCheck()), chat.now)
    assert chat.reply({"type": "heartbeat", "token": bob})["code"] == "no_session"


def test_another_users_token_from_another_address_gets_no_session():
    chat = Chat()
    stolen = chat.reply({"type": "online", "token": chat.alice})     # from BAD_HOST
    assert (stolen["code"], stolen["message"]) == (
        "no_session", "that token belongs to a session from another address")
    chat.good()     # the token still works where its login came from


def test_without_binding_a_token_works_from_anywhere():
    chat = Chat(Settings())
    assert chat.reply({"type": "online", "token": chat.alice})["type"] == "online"


# -- rate limits ----------------------------------------------------------------------------

def test_a_users_flood_gets_slow_down_logged_once_and_others_are_served():
    chat = Chat(Settings(tokens_bound_to_host=True, user_rate_per_s=2, user_burst=5))
    bob = chat.login("bob", "pw-b", BAD_HOST)["token"]
    flood = [chat.send({"type": "online", "token": bob}) for _ in range(50)]
    codes = [a.frame.get("code") for actions in flood for a in actions if isinstance(a, Reply)]
    assert codes[:5] == [None] * 5 and set(codes[5:]) == {"slow_down"}
    refusal = [a.frame for a in flood[5] if isinstance(a, Reply)][0]
    assert refusal["seconds"] == 1 and "try again in 1 s" in refusal["message"]
    assert [line for actions in flood[5:] for line in logs(actions)] == [
        "bob: over the rate limit, answering slow_down for a while"]
    chat.good()      # alice's own bucket is full
    chat.now += 0.5  # one token back for bob
    assert chat.reply({"type": "online", "token": bob})["type"] == "online"


def test_a_refused_request_still_keeps_its_session_alive():
    chat = Chat(Settings(user_rate_per_s=1, user_burst=1, timeout_s=31))
    bob = chat.login("bob", "pw-b", BAD_HOST)["token"]
    chat.reply({"type": "online", "token": bob})
    chat.now = 20.0
    for _ in range(2):
        chat.reply({"type": "heartbeat", "token": bob})
        chat.reply({"type": "heartbeat", "token": bob})     # slow_down, but a sign of life
    chat.now = 31.0         # the check's time
    checked = chat.server.handle(ServerExpired(IdleCheck()), chat.now)
    assert logs(checked) == ["alice timed out after 31 s without a request"]
    assert checked[-1] == Arm(IdleCheck(), 51.0) and chat.server.is_online("bob")


def test_one_users_flood_does_not_drain_the_address_it_shares():
    chat = Chat(Settings(user_rate_per_s=1, user_burst=2, address_rate_per_s=1, address_burst=10))
    bob = chat.login("bob", "pw-b", GOOD_HOST)["token"]      # behind the same NAT as alice
    for _ in range(100):
        chat.send({"type": "online", "token": bob}, GOOD_HOST)
    chat.good()


def test_a_flood_with_no_login_does_not_slow_the_users_logged_in_at_its_address():
    """A trial's: check_user requests with no token, from the address alice is logged in
    from, answered slow_down to 19 of her 20 heartbeats when both buckets were spent."""
    chat = Chat(Settings(user_rate_per_s=1, user_burst=20, address_rate_per_s=1,
                         address_burst=10, tokens_bound_to_host=True))
    for _ in range(60):
        chat.reply({"type": "check_user", "user": "bob"}, GOOD_HOST)
    assert chat.reply({"type": "check_user", "user": "bob"}, GOOD_HOST)["code"] == "slow_down"
    answers = [chat.reply({"type": "heartbeat", "token": chat.alice}, GOOD_HOST)["type"]
               for _ in range(15)]
    assert answers == ["ok"] * 15
    chat.good()


def test_an_address_flood_of_garbage_gets_slow_down_and_other_addresses_are_served():
    chat = Chat(Settings(address_rate_per_s=10, address_burst=20))
    replies = []
    for _ in range(200):
        actions = chat.server.handle(BadFrame(9, BAD_HOST, "bad_json"), chat.now)
        replies += [a.frame["code"] for a in actions if isinstance(a, Reply)]
    assert replies[:20] == ["bad_json"] * 20 and set(replies[20:]) == {"slow_down"}
    assert chat.login("bob", "pw-b", BAD_HOST)["code"] == "slow_down"
    chat.good()
    assert chat.login("carol", "pw-c", "10.0.0.3")["type"] == "welcome"


def test_a_logout_is_taken_from_a_user_over_its_rate_limit():
    """A script's 100 messages then logout: refused, the user stayed online to everyone for
    31 s, while its client said it had logged out (a trial's)."""
    chat = Chat(Settings(user_rate_per_s=0.5, user_burst=3, tokens_bound_to_host=True))
    for _ in range(3):
        chat.reply({"type": "online", "token": chat.alice}, GOOD_HOST)
    assert chat.reply({"type": "online", "token": chat.alice}, GOOD_HOST)["code"] == "slow_down"
    for bad in ({"reason": 7}, {"reason": ""}, {"id": [1]}):       # cannot end it: limited
        assert chat.reply({"type": "logout", "token": chat.alice, **bad},
                          GOOD_HOST)["code"] == "slow_down"
    actions = chat.send({"type": "logout", "token": chat.alice}, GOOD_HOST)
    assert [a.frame["type"] for a in actions if isinstance(a, Reply)] == ["ok"]
    assert "alice logged out" in [a.text for a in actions if isinstance(a, Log)]
    again = chat.reply({"type": "logout", "token": chat.alice}, GOOD_HOST)
    assert again["code"] == "no_session"        # a token no longer good is limited as before


def test_failed_logins_are_limited_per_address_across_names():
    chat = Chat(Settings(failed_logins_per_s=0.1, failed_logins_burst=4))
    for name in ("bob", "carol", "nobody", "bob"):
        assert chat.login(name, "guess", BAD_HOST)["code"] in ("wrong_password", "unknown_user")
    refusal = chat.login("carol", "pw-c", BAD_HOST)          # even the right password waits
    assert (refusal["code"], refusal["seconds"]) == ("slow_down", 10)
    assert chat.store.lockout("carol") == (1, None)          # and does not count against carol
    assert chat.login("carol", "pw-c", "10.0.0.3")["type"] == "welcome"   # another address
    chat.now += 10.0
    assert chat.login("bob", "pw-b", BAD_HOST)["type"] == "welcome"
    chat.good()


def test_a_rate_of_zero_turns_a_limit_off():
    chat = Chat(Settings(user_rate_per_s=0, address_rate_per_s=0, failed_logins_per_s=0))
    for _ in range(2000):
        chat.send({"type": "online", "token": chat.alice}, GOOD_HOST)
    assert chat.reply({"type": "online", "token": chat.alice}, GOOD_HOST)["type"] == "online"


# -- passwords --------------------------------------------------------------------------------

def test_a_hashed_entry_logs_in_and_every_check_costs_one_scrypt(monkeypatch):
    calls = []
    real = passwords._scrypt
    monkeypatch.setattr(passwords, "_scrypt", lambda pw, salt: calls.append(1) or real(pw, salt))
    accounts = {"alice": "pw-a", "bob": passwords.hash_password("pw-b"), "carol": "pw-c"}
    chat = Chat(accounts=accounts)
    for user, password in (("bob", "pw-b"), ("bob", "no"), ("carol", "no")):
        calls.clear()
        chat.login(user, password, "10.0.0.5")
        assert calls == [1], user
    calls.clear()                           # a name no account has costs none (check_user
    assert chat.login("nobody", "x", "10.0.0.5")["code"] == "unknown_user"   # tells anyway)
    assert calls == []
    assert chat.login("bob", "pw-b", "10.0.0.5")["type"] == "welcome"


def test_unknown_names_from_many_addresses_spend_none_of_everyones_checks():
    """A trial's 800 addresses trying unknown names took the hundred checks a second everyone
    shares: a right password from elsewhere got slow_down 8 times in 9."""
    chat = Chat(Settings(checks_per_s=1.0, checks_burst=2), accounts=HASHED)
    for n in range(50):
        assert chat.login(f"nobody{n}", "x", f"10.0.2.{n}")["code"] == "unknown_user"
    assert chat.login("bob", "pw-b", "10.0.0.9")["type"] == "welcome"


HASHED = {"alice": "pw-a", "bob": passwords.hash_password("pw-b"), "carol": "pw-c"}


def test_hashed_password_checks_are_limited_per_address_and_the_right_password_waits_too():
    """Each check costs a scrypt of the one thread, right password or wrong: one address
    gets its burst, then slow_down, and the password is not checked (a wrong one is not
    counted against the name); other addresses go on, and the address's own turn comes back."""
    chat = Chat(Settings(address_checks_per_s=0.5, address_checks_burst=3), accounts=HASHED)
    for _ in range(2):      # (alice's login in Chat() was GOOD_HOST's first)
        assert chat.login("bob", "pw-b", GOOD_HOST)["type"] == "welcome"
    refusal = chat.login("bob", "pw-b", GOOD_HOST)
    assert (refusal["code"], refusal["seconds"]) == ("slow_down", 2)
    assert refusal["message"] == "too many logins just now; try again in 2 s"
    assert chat.login("bob", "wrong", GOOD_HOST)["code"] == "slow_down"
    assert chat.store.lockout("bob") == (0, None)
    assert chat.login("carol", "pw-c", BAD_HOST)["type"] == "welcome"
    chat.now += 2.0
    assert chat.login("alice", "pw-a", GOOD_HOST)["type"] == "welcome"


def test_hashed_password_checks_are_limited_in_all_without_spending_the_address():
    """Many addresses together get the burst of everyone's checks; one refused for that
    keeps its own token for when everyone's come back."""
    chat = Chat(Settings(checks_per_s=1.0, checks_burst=3, address_checks_burst=1),
                accounts=HASHED)
    assert chat.login("bob", "pw-b", "10.0.0.2")["type"] == "welcome"
    assert chat.login("carol", "pw-c", "10.0.0.3")["type"] == "welcome"
    refusal = chat.login("bob", "pw-b", "10.0.0.4")
    assert (refusal["code"], refusal["seconds"]) == ("slow_down", 1)
    chat.now += 1.0
    assert chat.login("bob", "pw-b", "10.0.0.4")["type"] == "welcome"


def test_hashed_password_checks_are_limited_per_name_so_one_account_cannot_take_them_all():
    """A trial's one account, logged in from 30 addresses each within its own limit, took
    everyone's checks: a login as anyone else was a lottery."""
    chat = Chat(Settings(name_checks_per_s=0.5, name_checks_burst=2), accounts=HASHED)
    for n in range(2):
        assert chat.login("bob", "pw-b", f"10.0.1.{n}")["type"] == "welcome"
    assert chat.login("bob", "pw-b", "10.0.1.9")["code"] == "slow_down"     # a new address
    assert chat.login("carol", "pw-c", "10.0.1.9")["type"] == "welcome"     # another name
    chat.now += 2.0
    assert chat.login("bob", "pw-b", "10.0.1.9")["type"] == "welcome"


def test_an_address_out_of_checks_spends_no_check_of_the_name_it_tries():
    """A trial's address kept its own checks spent with its accounts' right passwords, and
    tried a victim's name ten times a second: every try was turned away before its password
    was read, nothing counted, and each spent the victim's name's check, so the victim's own
    logins, from anywhere, were all slow_down."""
    chat = Chat(Settings(name_checks_per_s=1.0, name_checks_burst=2, address_checks_per_s=1.0,
                         address_checks_burst=1), accounts=HASHED)
    assert chat.login("carol", "pw-c", BAD_HOST)["type"] == "welcome"   # its one check
    for _ in range(5):
        assert chat.login("bob", "guess", BAD_HOST)["code"] == "slow_down"
    assert chat.store.lockout("bob") == (0, None)
    assert chat.login("bob", "pw-b", "10.0.0.7")["type"] == "welcome"
    assert chat.login("bob", "pw-b", "10.0.0.8")["type"] == "welcome"   # the name's burst: 2


def test_plain_passwords_cost_no_scrypt_and_their_checks_are_not_limited():
    chat = Chat(Settings(checks_per_s=0.1, checks_burst=1, address_checks_per_s=0.1,
                         address_checks_burst=1))
    for _ in range(20):
        assert chat.login("bob", "pw-b", BAD_HOST)["type"] == "welcome"


def test_a_plain_file_needs_no_scrypt(monkeypatch):
    monkeypatch.setattr(passwords, "_scrypt", lambda pw, salt: pytest.fail("scrypt ran"))
    chat = Chat()
    assert chat.login("nobody", "x", "10.0.0.5")["code"] == "unknown_user"
    assert chat.login("bob", "pw-b", "10.0.0.5")["type"] == "welcome"


# -- the client core --------------------------------------------------------------------------

def test_the_client_keeps_a_message_the_server_asks_to_slow_down_and_sends_it_again():
    run = logged_in()
    run.type("message bob one")
    first = run.open[run.last("message")]
    actions = run.reply({"type": "error", "code": "slow_down", "seconds": 3,
                         "message": "too many requests"}, "message")
    assert printed(actions) == [
        "The server asks us to slow down; your message is kept and sent in 3 s."]
    assert ClientArm(OutboxRetry(), run.now + 3) in actions
    run.now += 3
    assert requests(run.do(Expired(OutboxRetry()))) == [first]        # the same mid


def login_sent():
    """A client whose name was taken and whose login is on its way -> (the run, the login)."""
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    return run, requests(run.type("pw"))[0]


def test_a_login_asked_to_slow_down_goes_again_by_itself_and_typed_lines_wait_for_it():
    run, login = login_sent()
    actions = run.reply(err("slow_down", seconds=2), "login")
    assert printed(actions) == ["The server is busy logging people in; trying again in 2 s."]
    assert ClientArm(LoginRetry(), run.now + 2) in actions
    assert requests(run.type("online")) == []          # not taken for a password
    run.now += 2
    assert requests(run.do(Expired(LoginRetry()))) == [login]
    assert requests(run.reply(WELCOME, "login")) == [{"type": "online", "token": "t1"}]


def test_a_login_the_server_cannot_store_goes_again_by_itself_said_once():
    """A full disk's `unavailable` to a login: a trial's user was asked the password again,
    as if it were wrong, and only a login typed again got in once the disk had room."""
    run, login = login_sent()
    actions = run.reply(err("unavailable", seconds=1), "login")
    assert printed(actions) == ["The server cannot store anything just now; your login is "
                                "tried again every 1 s until it can (Ctrl-C leaves)."]
    assert ClientArm(LoginRetry(), run.now + 1) in actions
    assert requests(run.type("online")) == []          # not taken for a password
    for _ in range(2):
        run.now += 1
        assert requests(run.do(Expired(LoginRetry()))) == [login]
        actions = run.reply(err("unavailable", seconds=1), "login")
        assert printed(actions) == [] and ClientArm(LoginRetry(), run.now + 1) in actions
    run.now += 1
    assert requests(run.do(Expired(LoginRetry()))) == [login]
    assert requests(run.reply(WELCOME, "login")) == [{"type": "online", "token": "t1"}]


def test_a_full_disk_after_a_refused_login_is_said_again():
    """(a review's: said once until a login got in, a wrong password between two full disks
    left the second unsaid, the client retrying without a word)"""
    run, _ = login_sent()
    assert printed(run.reply(err("unavailable", seconds=1), "login"))
    run.now += 1
    run.do(Expired(LoginRetry()))
    run.reply(err("wrong_password", attempts_left=2), "login")
    run.type("pw2")
    assert printed(run.reply(err("unavailable", seconds=1), "login")) == [
        "The server cannot store anything just now; your login is tried again every 1 s "
        "until it can (Ctrl-C leaves)."]


def test_a_script_s_login_the_server_cannot_store_waits_30_s_then_stops():
    """(a review's: a script reading a file retried its login for as long as the disk was
    full; it waits as long as for its messages in an outage)"""
    run = Run(scripted=True)
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    login = requests(run.type("pw"))[0]
    run.reply(err("unavailable", seconds=1), "login")
    for _ in range(29):
        run.now += 1
        assert requests(run.do(Expired(LoginRetry()))) == [login]
        assert ClientArm(LoginRetry(), run.now + 1) in run.reply(err("unavailable", seconds=1),
                                                                 "login")
    run.now += 1
    run.do(Expired(LoginRetry()))
    actions = run.reply(err("unavailable", seconds=1), "login")
    assert Exit(1, "the login failed (the server could not store anything for 30 s); the "
                   "rest of the input was not read") in actions


def test_a_login_slowed_down_past_a_minute_waits_a_minute():
    run = Run()
    run.do(Started())
    run.type("alice")
    run.reply(OK)
    run.type("pw")
    actions = run.reply(err("slow_down", seconds=10 ** 9), "login")
    assert ClientArm(LoginRetry(), run.now + 60) in actions


def test_the_client_waits_a_second_when_slow_down_names_no_time():
    run = logged_in()
    run.type("broadcast one")
    actions = run.reply({"type": "error", "code": "slow_down", "seconds": "soon"}, "broadcast")
    assert ClientArm(OutboxRetry(), run.now + 1) in actions


def test_the_client_listener_logs_a_bad_frame_before_hello_by_its_code():
    run = logged_in()
    actions = run.do(Incoming(77, {"type": "error", "code": "bad_json", "message": "x"}))
    assert [a.text for a in actions if isinstance(a, ClientLog)] == [
        "refused delivery connection 77: a bad frame (bad_json) before hello"]


# -- the server's options -------------------------------------------------------------------

def test_limit_options_reach_the_settings_and_bad_values_exit_2(capsys):
    from server import limit_settings, parse_args
    args = parse_args(["0", "--user-rate", "2.5", "--user-burst", "7", "--address-rate", "0",
                       "--address-burst", "9", "--failed-logins", "6", "--max-connections", "3",
                       "--frame-time", "1.5"])
    settings = Settings(**limit_settings(args))
    assert (settings.user_rate_per_s, settings.user_burst, settings.address_rate_per_s,
            settings.address_burst, settings.failed_logins_burst) == (2.5, 7, 0.0, 9, 6)
    assert settings.failed_logins_per_s == 0.1 and settings.tokens_bound_to_host
    assert (args.max_connections, args.frame_time) == (3, 1.5)
    # (a cap or burst of 0 refused every message or request: an operator's typo, never useful)
    for bad in (["--user-rate", "-1"], ["--user-rate", "fast"], ["--user-burst", "1.5"],
                ["--max-connections", "-3"], ["--frame-time", "0"], ["--max-connections", "0"],
                ["--user-burst", "0"], ["--address-burst", "0"], ["--inbox-messages", "0"],
                ["--inbox-bytes", "0"], ["--store-messages", "0"], ["--store-bytes", "0"]):
        with pytest.raises(SystemExit) as stop:
            parse_args(["0", *bad])
        assert stop.value.code == 2
