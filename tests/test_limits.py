"""Token buckets and once-per-burst logging (limits.py), under a `now` the test moves."""
from limits import PRUNE_EVERY_S, OncePer, RateLimiter, wait_text


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait():
    bucket = RateLimiter(rate_per_s=2, burst=3)
    assert [bucket.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a", 0.0) == 0.5
    assert bucket.check("a", 0.25) == 0.25        # check spends nothing
    assert bucket.take("a", 0.5) == 0.0           # one token back after 1 / rate
    assert bucket.take("a", 0.5) > 0


def test_a_take_may_cost_several_tokens_and_one_above_the_burst_never_passes():
    bucket = RateLimiter(rate_per_s=10, burst=100)
    assert bucket.take("all", 0.0, cost=60) == 0.0
    assert bucket.take("all", 0.0, cost=60) == 2.0     # 40 left: 20 more tokens, at 10 a second
    assert bucket.tokens("all", 0.0) == 40.0            # a refused take spends nothing
    assert bucket.take("all", 2.0, cost=60) == 0.0
    assert bucket.take("all", 1000.0, cost=101) > 0     # full, and still short of 101


def test_keys_have_buckets_of_their_own_and_refill_up_to_the_burst():
    bucket = RateLimiter(rate_per_s=1, burst=2)
    bucket.take("a", 0.0), bucket.take("a", 0.0)
    assert bucket.take("b", 0.0) == 0.0
    assert bucket.tokens("a", 1000.0) == 2.0


def test_full_buckets_are_forgotten_so_memory_follows_recent_senders():
    bucket = RateLimiter(rate_per_s=1, burst=1)
    for key in range(100):
        bucket.take(key, 0.0)
    assert len(bucket) == 100
    bucket.take("late", PRUNE_EVERY_S + 1)
    assert len(bucket) == 1


def test_a_zero_rate_or_burst_is_no_limit():
    for bucket in (RateLimiter(0, 10), RateLimiter(5, 0)):
        assert not bucket.enabled
        assert all(bucket.take("a", 0.0) == 0.0 for _ in range(1000))
        assert bucket.check("a", 0.0) == 0.0


def test_wait_text_rounds_up_to_whole_seconds_at_least_one():
    assert [wait_text(s) for s in (0.01, 1.0, 1.2, 5.99)] == [1, 1, 2, 6]


def test_once_per_is_due_once_per_quiet_period_per_key():
    once = OncePer(quiet_s=10)
    assert [once.due("a", t) for t in (0, 1, 9.9, 10, 11)] == [True, False, False, True, False]
    assert once.due("b", 1)
    assert once.due("a", 10 + PRUNE_EVERY_S)       # pruning forgets quiet periods that ended

