import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dreamer2.replay import Replay, ReplayError, load_episode, save_episode


def episode(length, start=0.0):
    """An episode of `length` transitions (length + 1 observations)."""
    n = length + 1
    return {"vector": (start + np.arange(n, dtype=np.float32))[:, None],
            "action": np.ones((n, 2), np.float32), "reward": np.arange(n, dtype=np.float32),
            "is_first": np.eye(1, n, dtype=bool)[0], "is_last": np.eye(1, n, n - 1, dtype=bool)[0],
            "is_terminal": np.zeros(n, bool)}


def test_round_trip(tmp_path):
    ep = episode(7)
    path = save_episode(tmp_path, ep)
    assert path.name.endswith("-7.npz")
    loaded = load_episode(path)
    for key in ep:
        np.testing.assert_array_equal(loaded[key], ep[key])


def test_reload_keeps_newest_within_capacity(tmp_path):
    replay = Replay(tmp_path, capacity=25, length=5)
    for i in range(5):
        replay.add(episode(10, start=100 * i))
    assert replay.loaded_steps <= 25 and len(replay) == 2  # memory bounded by capacity
    again = Replay(tmp_path, capacity=25, length=5)
    assert again.total_steps == 50 and again.total_episodes == 5
    starts = sorted(float(ep["vector"][0, 0]) for ep in again.episodes.values())
    assert starts == [300.0, 400.0]  # the newest ones, as in memory before


def test_short_episodes_are_joined_with_is_first(tmp_path):
    replay = Replay(tmp_path, capacity=1000, length=20, seed=1)
    replay.add(episode(3))  # 4 observations
    batch = replay.sample(8)
    assert batch["vector"].shape == (8, 20, 1)
    assert batch["is_first"][:, 0].all()
    # Every join starts a window: the observation count between resets never exceeds 4.
    for row in batch["is_first"]:
        starts = np.flatnonzero(row)
        assert np.all(np.diff(np.append(starts, 20)) <= 4)


def test_windows_stay_inside_one_episode(tmp_path):
    replay = Replay(tmp_path, capacity=1000, length=10, seed=0)
    replay.add(episode(30, start=0))
    replay.add(episode(30, start=1000))
    batch = replay.sample(64)
    assert batch["is_first"][:, 1:].sum() == 0  # long episodes: one window per sequence
    steps = np.diff(batch["vector"][..., 0], axis=1)
    assert np.all(steps == 1)  # consecutive steps of a single episode
    # Prioritized ends: the final observation shows up more than uniform sampling would give.
    ends = (batch["reward"][:, -1] == 30).mean()
    assert ends > 0.2


def test_interrupted_write_leaves_no_readable_partial_file(tmp_path):
    # A child process dies (os._exit) right after writing half of the temp file, before the rename.
    code = textwrap.dedent(f"""
        import os, numpy as np
        import dreamer2.replay as r
        real_write = None
        class Dying:
            def __init__(self, f): self.f = f
        original_open = open
        def atomic_write(path, data):
            tmp = path.with_name('.' + path.name + '.abc.tmp')
            with original_open(tmp, 'wb') as f:
                f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
            os._exit(9)
        r.atomic_write = atomic_write
        ep = {{'reward': np.zeros(5, np.float32), 'action': np.zeros((5, 1), np.float32)}}
        r.save_episode({str(tmp_path)!r}, ep)
    """)
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == 9
    assert list(tmp_path.glob("*.npz")) == []
    assert len(list(tmp_path.glob(".*.tmp"))) == 1
    replay = Replay(tmp_path, capacity=100, length=5)  # starts clean, removes the leftover
    assert len(replay) == 0 and list(tmp_path.glob(".*.tmp")) == []


def test_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / "20260101T000000000000-deadbeef-9.npz").write_bytes(b"not a zip file")
    with pytest.raises(ReplayError, match="corrupt"):
        Replay(tmp_path, capacity=100, length=5)


def test_sampling_is_seeded(tmp_path):
    for i in range(3):
        save_episode(tmp_path, episode(12, start=10 * i))
    a = Replay(tmp_path, capacity=100, length=6, seed=3).sample(4)
    b = Replay(tmp_path, capacity=100, length=6, seed=3).sample(4)
    np.testing.assert_array_equal(a["vector"], b["vector"])


@pytest.mark.parametrize("uniform, share", [("episode", 0.5), ("step", 0.9)])
def test_uniform_over_episodes_or_steps(tmp_path, uniform, share):
    replay = Replay(tmp_path, capacity=1000, length=5, prioritize_ends=False, seed=0, uniform=uniform)
    replay.add(episode(9, start=0))  # 10 observations
    replay.add(episode(89, start=1000))  # 90 observations
    first = replay.sample(4000)["vector"][:, 0, 0]
    assert abs((first >= 1000).mean() - share) < 0.03  # the long episode's share of the draws


def test_unknown_uniform_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="uniform"):
        Replay(tmp_path, capacity=10, length=5, uniform="steps")
