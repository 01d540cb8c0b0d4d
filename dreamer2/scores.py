"""Reference numbers: the reference DreamerV2's published learning curves and Atari baselines.

The data (copied from the reference's release into ``dreamer2/data/``) lets a run be compared
with the paper: human-normalized scores, and the reference curve at any frame count.
"""
from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
CURVES = {"atari": "atari-dreamerv2.json.gz", "dmc": "dmc-vision-dreamerv2.json.gz"}


def task_key(task: str) -> str:
    """``atari:Breakout`` / ``atari:space_invaders`` / ``dmc:walker_walk`` -> ``atari_breakout`` ..."""
    suite, _, name = task.partition(":")
    if not name:
        return task.lower()
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()  # CamelCase -> snake_case
    return f"{suite}_{name}"


@lru_cache(maxsize=None)
def baselines() -> dict[str, dict[str, float]]:
    return json.loads((DATA / "baselines.json").read_text())


@lru_cache(maxsize=None)
def _curves(suite: str) -> dict[str, list[dict]]:
    by_task: dict[str, list[dict]] = {}
    with gzip.open(DATA / CURVES[suite], "rt") as f:
        for run in json.load(f):
            by_task.setdefault(run["task"], []).append(run)
    return by_task


def human_normalized(task: str, score: float) -> float:
    """``(score - random) / (human_gamer - random)``: 0 is the random policy, 1 a human gamer."""
    key = task_key(task)
    if key not in baselines():
        raise KeyError(f"no Atari baselines for '{task}'")
    base = baselines()[key]
    return (score - base["random"]) / (base["human_gamer"] - base["random"])


def reference_curve(task: str, frames: float | None = None) -> dict[str, object]:
    """The reference DreamerV2 curve of a task across its seeds.

    With ``frames``, each seed's return is interpolated at that frame count and the result holds
    ``mean``, ``std``, ``min``, ``max`` and ``seeds``; without, the common x grid and the per-seed
    returns on it (``xs``, ``ys`` [seeds, points]). Frames outside the recorded range are an
    error rather than a silently clamped value (most Atari curves start at 1M frames).
    """
    key = task_key(task)
    suite = key.split("_", 1)[0]
    runs = _curves(suite).get(key) if suite in CURVES else None
    if not runs:
        raise KeyError(f"no reference curve for '{task}'")
    xs = np.array(runs[0]["xs"], float)
    ys = np.stack([np.interp(xs, run["xs"], run["ys"]) for run in runs])  # [seeds, points]
    if frames is None:
        return {"xs": xs, "ys": ys, "seeds": len(runs)}
    lo, hi = max(run["xs"][0] for run in runs), min(run["xs"][-1] for run in runs)
    if not lo <= frames <= hi:
        raise ValueError(f"the reference curve of '{task}' covers {lo:.0f} to {hi:.0f} frames, not {frames:.0f}")
    at = np.array([np.interp(frames, run["xs"], run["ys"]) for run in runs])
    return {"mean": float(at.mean()), "std": float(at.std()), "min": float(at.min()), "max": float(at.max()),
            "seeds": len(runs), "frames": float(frames)}


def crafter_score(success_rates: dict[str, float] | list[float]) -> float:
    """The Crafter score: ``exp(mean(ln(1 + s_i))) - 1`` over the success rates s_i in percent
    of all achievements (Hafner, 2021); 0 when nothing is ever achieved, 100 when all always are."""
    rates = np.array(list(success_rates.values()) if isinstance(success_rates, dict) else success_rates, float)
    return float(np.exp(np.log1p(rates).mean()) - 1)


class Achievements:
    """Success rates of achievements over a run's training episodes (an episode succeeds at an
    achievement when its ``log_achievement_NAME`` count is above 0 at the end). Checkpointed, so
    the rates of a resumed run cover all its episodes."""

    PREFIX = "log_achievement_"

    def __init__(self):
        self.episodes = 0
        self.unlocked: dict[str, int] = {}

    def add(self, episode: dict[str, np.ndarray]) -> dict[str, float]:
        """Count one finished episode; returns the metrics to log (empty for suites without achievements)."""
        names = [k[len(self.PREFIX):] for k in episode if k.startswith(self.PREFIX)]
        if not names:
            return {}
        self.episodes += 1
        for name in names:
            self.unlocked[name] = self.unlocked.get(name, 0) + int(np.max(episode[self.PREFIX + name][-1]) > 0)
        rates = {name: 100.0 * count / self.episodes for name, count in self.unlocked.items()}
        return {**{f"achievements/{k}": v for k, v in rates.items()}, "achievements/score": crafter_score(rates)}

    def state_dict(self) -> dict:
        return {"episodes": self.episodes, "unlocked": dict(self.unlocked)}

    def load_state_dict(self, state: dict) -> None:
        self.episodes, self.unlocked = state["episodes"], dict(state["unlocked"])
