"""Atari through gymnasium + ale-py (ROMs ship inside the ale-py wheel), with the paper's protocol:
sticky actions 0.25, up to 30 no-ops, frame skip = ``env.action_repeat`` with max-pooling over the
last two frames, grayscale, 64x64, minimal action set, no episode end on life loss. The time
limit (27,000 agent steps in the atari preset) ends an episode with ``is_last``, not ``is_terminal``.
"""
from __future__ import annotations

import re

import gymnasium
from gymnasium.wrappers import AtariPreprocessing

from .gym import EnvError, GymAdapter, unknown_name


def game_id(name: str) -> str:
    """``Breakout``, ``breakout`` or ``space_invaders`` -> ``ALE/Breakout-v5`` / ``ALE/SpaceInvaders-v5``."""
    if re.fullmatch(r"[a-z0-9_]+", name):
        name = "".join(part.capitalize() for part in name.split("_"))
    return f"ALE/{name}-v5"


def make_atari(name: str, cfg, seed: int) -> GymAdapter:
    try:
        import ale_py
    except ImportError:
        raise EnvError("atari tasks need ale-py: pip install 'dreamer2[atari]'") from None
    gymnasium.register_envs(ale_py)
    env_id = game_id(name)
    if env_id not in gymnasium.registry:
        games = sorted(k[4:-3] for k in gymnasium.registry if k.startswith("ALE/") and k.endswith("-v5"))
        raise unknown_name("Atari game", name, env_id[4:-3], games)
    a = cfg.env.atari
    env = gymnasium.make(env_id, frameskip=1, repeat_action_probability=a.sticky, full_action_space=a.full_actions,
                         render_mode="rgb_array")
    size = tuple(cfg.env.size)
    env = AtariPreprocessing(env, noop_max=a.noops, frame_skip=cfg.env.action_repeat, screen_size=(size[1], size[0]),
                             terminal_on_life_loss=a.life_done, grayscale_obs=a.grayscale, grayscale_newaxis=True)
    # Frame skip happens in the wrapper, so the adapter repeats nothing more.
    return GymAdapter(env, size=size, action_repeat=1, time_limit=cfg.env.time_limit, seed=seed)
