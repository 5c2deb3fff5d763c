"""Sticky assignment: stable across processes, monotone in the share, balanced."""

import subprocess
import sys

from fraud.assignment import BUCKETS, assign, bucket


def test_known_buckets_are_stable_forever():
    # Pinned values: a change here silently reshuffles every user of a running experiment.
    assert bucket("user_123", "fraudserve-ab-1") == 5681
    assert [bucket(f"user_{i}", "s") for i in range(3)] == [9291, 4195, 2982]
    assert _buckets_in_fresh_process() == [9291, 4195, 2982]


def _buckets_in_fresh_process() -> list[int]:
    code = ("from fraud.assignment import bucket; "
            "print([bucket(f'user_{i}', 's') for i in range(3)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345"})
    return eval(out.stdout)


def test_same_user_same_arm():
    assert len({assign("user_42", "salt", 0.5) for _ in range(100)}) == 1


def test_raising_the_share_only_moves_users_from_a_to_b():
    users = [f"u{i}" for i in range(5000)]
    for low, high in [(0.0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.0)]:
        for u in users:
            if assign(u, "salt", low) == "model_b":
                assert assign(u, "salt", high) == "model_b"


def test_extremes():
    assert {assign(f"u{i}", "s", 0.0) for i in range(500)} == {"model_a"}
    assert {assign(f"u{i}", "s", 1.0) for i in range(500)} == {"model_b"}


def test_split_is_close_to_the_share():
    n, share = 20_000, 0.3
    got = sum(assign(f"user-{i}", "salt", share) == "model_b" for i in range(n)) / n
    sd = (share * (1 - share) / n) ** 0.5
    assert abs(got - share) < 4 * sd


def test_salt_reshuffles():
    users = [f"u{i}" for i in range(2000)]
    same = sum(assign(u, "a", 0.5) == assign(u, "b", 0.5) for u in users) / len(users)
    assert 0.4 < same < 0.6
    assert all(0 <= bucket(u, "x") < BUCKETS for u in users)
