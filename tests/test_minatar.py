import imageio.v2 as imageio
import numpy as np
import pytest

import dreamer2
from dreamer2.config import make_config
from dreamer2.envs import EnvError, make_env
from dreamer2.logger import channels_to_rgb

pytest.importorskip("minatar")


def breakout(**overrides):
    cfg = make_config("minatar", {"env.task": "minatar:breakout", **overrides})
    return make_env(cfg.env.task, cfg, seed=0)


def test_channels_become_a_sharp_binary_image():
    env = breakout()
    obs = env.reset()
    assert env.obs_space == {"image": ((64, 64, 4), np.dtype(np.uint8))}  # paddle, ball, trail, bricks
    assert env.act_space.n == 3  # minimal action set: no-op, left, right
    state = np.asarray(env.env.unwrapped.game.state())
    image = obs["image"]
    assert set(np.unique(image)) <= {0, 255}
    # Every 10x10 cell maps to a block of 6 or 7 pixels holding its value: sample each block's centre.
    centres = ((np.arange(10) + 0.5) * 6.4).astype(int)
    assert np.array_equal(image[centres][:, centres] // 255, state.astype(np.uint8))


def test_seeded_episodes_repeat():
    def run(seed):
        cfg = make_config("minatar", {"env.task": "minatar:breakout"})
        env = make_env(cfg.env.task, cfg, seed=seed)
        frames, rng = [env.reset()["image"]], np.random.default_rng(0)
        frames += [env.step(env.random_action(rng))["image"] for _ in range(40)]
        return np.stack(frames)
    assert np.array_equal(run(1), run(1))


def test_unknown_game_names_the_close_one():
    with pytest.raises(EnvError, match="did you mean breakout"):
        make_env("minatar:breakot", make_config("minatar"), seed=0)


def test_other_channel_counts_get_one_colour_each():
    frames = np.zeros((1, 2, 2, 4), np.uint8)
    frames[0, 0, 0, 0] = frames[0, 0, 1, 3] = 255
    rgb = channels_to_rgb(frames)
    assert rgb.shape == (1, 2, 2, 3)
    assert rgb[0, 0, 0].max() > 0 and rgb[0, 1, 1].max() == 0
    assert not np.array_equal(rgb[0, 0, 0], rgb[0, 0, 1])  # different channels, different colours
    grey = np.full((1, 2, 2, 1), 7, np.uint8)
    assert np.array_equal(channels_to_rgb(grey), np.full((1, 2, 2, 3), 7, np.uint8))


def test_smoke_training_writes_videos_and_dreams(tmp_path):
    agent = dreamer2.train("minatar:breakout", preset=["minatar", "debug"], steps=250,
                           logdir=tmp_path / "run", progress=False)
    assert agent.obs_space["image"][0] == (64, 64, 4)
    videos = sorted(p.name.split("-")[0] for p in (tmp_path / "run" / "videos").glob("*.mp4"))
    assert {"eval_policy", "openl", "train_policy"} <= set(videos)
    # The dream: replayed frames on top, imagined ones below; 5 observed + 10 dreamed steps, 3 sequences.
    path = dreamer2.dream(dreamer2.load(tmp_path / "run"), tmp_path / "dream.gif", sequences=3, context=5,
                          horizon=10)
    frames = np.stack(imageio.mimread(path))
    assert frames.shape[:3] == (15, 2 * 64, 3 * 64)
    batch = agent_replay_batch(tmp_path / "run", 15)
    raw = agent.dream_video(batch, context=5)
    assert raw.shape == (15, 128, 64 * len(batch["reward"]), 4) and raw.dtype == np.uint8
    real = np.concatenate(list(batch["image"]), 2)  # [T, H, B*W, C]
    mask = np.repeat(_same_episode(batch), 64, 1)[:, None, :, None]  # black past the replayed episode's end
    np.testing.assert_array_equal(raw[:, :64], real * mask)


def agent_replay_batch(logdir, length):
    from dreamer2.replay import Replay
    return Replay(logdir / "episodes", 10_000, length, prioritize_ends=False, seed=1).sample(2)


def _same_episode(batch):
    """[T, 1] mask per sequence column, 1 until the replayed sequence enters another episode."""
    first = batch["is_first"].copy()
    first[:, 0] = False
    return (np.cumsum(first, 1) == 0).T.astype(np.uint8)
