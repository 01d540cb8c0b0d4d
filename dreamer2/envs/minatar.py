"""MinAtar (Young & Tian, 2019): 10x10 miniature Atari games whose observation is a stack of
binary channels (paddle, ball, trail, bricks, ...). The channels become the image, each one
0 or 255 and upscaled to ``env.size`` with nearest neighbours so the CNN sees sharp cells; the
game's own settings (sticky actions 0.1, difficulty ramping) and its minimal action set are kept.
"""
from __future__ import annotations

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces

from ..logger import channels_to_rgb
from .gym import EnvError, GymAdapter, unknown_name

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


class MinAtarImage(gymnasium.ObservationWrapper):
    """Binary [10, 10, C] state -> uint8 [H, W, C] image; ``render()`` colours the channels."""

    def __init__(self, env: gymnasium.Env, size: tuple[int, int]):
        super().__init__(env)
        self.size = tuple(size)
        channels = env.observation_space.shape[-1]
        self.observation_space = spaces.Box(0, 255, (*self.size, channels), np.uint8)

    @property
    def render_mode(self) -> str:
        return "rgb_array"

    def observation(self, state: np.ndarray) -> np.ndarray:
        image = np.asarray(state, np.uint8) * 255
        return cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST).reshape(
            *self.size, image.shape[-1])

    def render(self) -> np.ndarray:
        state = np.asarray(self.env.unwrapped.game.state(), np.uint8) * 255
        return np.repeat(np.repeat(channels_to_rgb(state[None])[0], 16, 0), 16, 1)  # 160x160, one cell = 16 px


def make_minatar(name: str, cfg, seed: int) -> GymAdapter:
    try:
        from minatar.gym import BaseEnv
    except ImportError:
        raise EnvError("minatar tasks need MinAtar: pip install 'dreamer2[minatar]'") from None
    game = name.lower()
    if game not in GAMES:
        raise unknown_name("MinAtar game", name, game, list(GAMES), fallback=f"; the games are {', '.join(GAMES)}")
    env = MinAtarImage(BaseEnv(game, use_minimal_action_set=True), tuple(cfg.env.size))
    return GymAdapter(env, size=tuple(cfg.env.size), action_repeat=cfg.env.action_repeat,
                      time_limit=cfg.env.time_limit, seed=seed)
