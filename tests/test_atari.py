import gymnasium
import numpy as np
import pytest

from dreamer2.config import make_config
from dreamer2.envs import make_env

ale_py = pytest.importorskip("ale_py")


def atari(**overrides):
    cfg = make_config("atari", {"env.task": "atari:Breakout", **overrides})
    return make_env(cfg.env.task, cfg, seed=0)


def onehot(i, n=4):
    return np.eye(n, dtype=np.float32)[i]


def test_observation_and_protocol_settings():
    env = atari()
    obs = env.reset()
    assert env.obs_space == {"image": ((64, 64, 1), np.dtype(np.uint8))}
    assert obs["image"].shape == (64, 64, 1) and obs["image"].dtype == np.uint8
    assert env.act_space.n == 4  # Breakout's minimal action set
    wrapper = env.env
    assert wrapper.noop_max == 30 and wrapper.frame_skip == 4
    assert wrapper.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    full = atari(**{"env.atari.full_actions": True, "env.atari.grayscale": False})
    assert full.act_space.n == 18 and full.obs_space["image"][0] == (64, 64, 3)


def test_seeded_runs_repeat_and_seeds_differ():
    def frames(seed):
        cfg = make_config("atari", {"env.task": "atari:Breakout"})
        env = make_env(cfg.env.task, cfg, seed=seed)
        obs = [env.reset()["image"]]
        rng = np.random.default_rng(0)
        obs += [env.step(onehot(rng.integers(4)))["image"] for _ in range(60)]
        return np.stack(obs)
    assert np.array_equal(frames(1), frames(1))
    assert not np.array_equal(frames(1), frames(2))


def run_until_life_lost(env):
    env.reset()
    lives = env.env.unwrapped.ale.lives()
    for _ in range(3000):
        obs = env.step(onehot(1 if np.random.rand() < 0.1 else 0))  # FIRE now and then, never move
        if env.env.unwrapped.ale.lives() < lives or obs["is_last"]:
            return obs
    raise AssertionError("no life lost")


def test_life_loss_does_not_end_the_episode_unless_asked():
    np.random.seed(0)
    obs = run_until_life_lost(atari())
    assert not obs["is_last"] and not obs["is_terminal"]
    obs = run_until_life_lost(atari(**{"env.atari.life_done": True}))
    assert obs["is_last"] and obs["is_terminal"]


def test_time_limit_is_last_not_terminal():
    env = atari(**{"env.time_limit": 5})
    env.reset()
    flags = [(o["is_last"], o["is_terminal"]) for o in (env.step(onehot(0)) for _ in range(5))]
    assert flags == [(False, False)] * 4 + [(True, False)]


def test_reward_is_the_sum_over_skipped_frames():
    cfg = make_config("atari", {"env.task": "atari:Breakout", "env.atari.sticky": 0.0, "env.atari.noops": 0})
    env = make_env(cfg.env.task, cfg, seed=0)
    raw = gymnasium.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    env.reset()
    raw.reset(seed=0)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(400):
        action = int(rng.integers(4))
        reward = sum(raw.step(action)[1] for _ in range(4))
        got = env.step(onehot(action))["reward"]
        assert got == reward
        total += got
    assert total > 0  # some bricks were hit, so the comparison saw non-zero rewards


def test_unknown_game_names_close_matches():
    from dreamer2.envs import EnvError
    cfg = make_config("atari")
    with pytest.raises(EnvError, match="Breakout"):
        make_env("atari:Breakuot", cfg, seed=0)
    assert make_env("atari:space_invaders", cfg, seed=0).act_space.n == 6
