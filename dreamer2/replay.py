"""Episode replay: finished episodes as compressed .npz files, sampled as fixed-length sequences.

Every episode is written atomically (temp file, fsync, rename), so a crash at any moment
leaves either the whole file or none. On start the newest episodes up to ``capacity`` steps
are loaded; older ones stay on disk only, so memory is bounded by the capacity.

Sampling follows the reference: pick an episode uniformly, then a window of up to ``length``
steps uniformly inside it, optionally favouring its end (``prioritize_ends``). Episodes
shorter than ``length`` are not dropped (the reference skips them): windows are joined
end to end until the sequence is full, and ``is_first`` marks each join so that the world
model resets its state there. Every sequence starts with ``is_first = True``.

Kept short episodes change what uniform over episodes means: on CartPole, where the first
episodes last ~20 steps and later ones hundreds, they are 7% of the steps but 43% of the draws
after 20k steps. ``uniform="step"`` draws an episode in proportion to its length instead.
"""
from __future__ import annotations

import io
import os
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


class ReplayError(RuntimeError):
    """A replay file that cannot be read, phrased for the user."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def episode_length(episode: dict[str, np.ndarray]) -> int:
    """Transitions in an episode: its observations minus the first (reset) one."""
    return len(episode["reward"]) - 1


def save_episode(directory: Path, episode: dict[str, np.ndarray]) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = Path(directory) / f"{stamp}-{uuid.uuid4().hex[:8]}-{episode_length(episode)}.npz"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **episode)
    atomic_write(path, buffer.getvalue())
    return path


def load_episode(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            episode = {k: data[k] for k in data.files}
        if "reward" not in episode or any(len(v) != len(episode["reward"]) for v in episode.values()):
            raise ValueError("keys missing or of unequal length")
    except Exception as err:
        raise ReplayError(f"replay file {path} is corrupt ({type(err).__name__}: {err}); "
                          "move it out of the episodes folder to resume") from None
    return episode


def _file_length(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise ReplayError(f"unexpected file {path} in the episodes folder (not written by dreamer2)") from None


class Replay:
    def __init__(self, directory: str | Path, capacity: int, length: int, prioritize_ends: bool = True,
                 seed: int = 0, uniform: str = "episode"):
        """``uniform``: "episode" draws each episode equally often (the reference); "step" draws
        it in proportion to its length (its observations)."""
        if uniform not in ("episode", "step"):
            raise ValueError(f"uniform must be 'episode' or 'step', got {uniform!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity, self.length, self.prioritize_ends = int(capacity), int(length), prioritize_ends
        self.uniform = uniform
        self.rng = np.random.default_rng(seed)
        self.episodes: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self.loaded_steps = 0
        self.total_steps = 0  # every finished episode on disk, loaded or not
        self.total_episodes = 0
        for tmp in self.directory.glob(".*.tmp"):  # a write interrupted by a crash
            tmp.unlink()
        files = sorted(self.directory.glob("*.npz"))
        self.total_episodes = len(files)
        self.total_steps = sum(_file_length(p) for p in files)
        selected, steps = [], 0
        for path in reversed(files):  # newest first, up to capacity (always at least one)
            if selected and steps + _file_length(path) > self.capacity:
                break
            selected.append(path)
            steps += _file_length(path)
        for path in reversed(selected):
            self._insert(path.stem, load_episode(path))

    def _insert(self, key: str, episode: dict[str, np.ndarray]) -> None:
        self.episodes[key] = episode
        self.loaded_steps += episode_length(episode)
        while self.loaded_steps > self.capacity and len(self.episodes) > 1:
            _, old = self.episodes.popitem(last=False)
            self.loaded_steps -= episode_length(old)

    def add(self, episode: dict[str, np.ndarray]) -> Path:
        """Store a finished episode on disk (atomically) and in memory."""
        episode = {k: np.asarray(v) for k, v in episode.items()}
        path = save_episode(self.directory, episode)
        self._insert(path.stem, episode)
        self.total_steps += episode_length(episode)
        self.total_episodes += 1
        return path

    def __len__(self) -> int:
        return len(self.episodes)

    def _window(self, episode: dict[str, np.ndarray], want: int) -> dict[str, np.ndarray]:
        total = len(episode["reward"])
        length = min(total, want)
        upper = total - length + 1
        if self.prioritize_ends:
            upper += want
        start = min(int(self.rng.integers(upper)), total - length)
        window = {k: v[start:start + length] for k, v in episode.items()}
        window["is_first"] = np.zeros(length, bool)
        window["is_first"][0] = True
        return window

    def _sequence(self, keys: list[str], cumulative: np.ndarray | None) -> dict[str, np.ndarray]:
        """One sequence of exactly ``length`` steps, joined from episode windows if needed.
        ``cumulative``: the episodes' cumulative lengths, to draw one in proportion to its length."""
        parts, have = [], 0
        while have < self.length:
            if cumulative is None:
                index = int(self.rng.integers(len(keys)))
            else:
                index = int(np.searchsorted(cumulative, self.rng.integers(cumulative[-1]), side="right"))
            part = self._window(self.episodes[keys[index]], self.length - have)
            parts.append(part)
            have += len(part["reward"])
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def sample(self, batch: int) -> dict[str, np.ndarray]:
        """[batch, length, ...] arrays."""
        if not self.episodes:
            raise ReplayError("replay is empty: no finished episode to sample from")
        keys = list(self.episodes)
        cumulative = (np.cumsum([len(self.episodes[k]["reward"]) for k in keys]) if self.uniform == "step"
                      else None)
        sequences = [self._sequence(keys, cumulative) for _ in range(batch)]
        return {k: np.stack([s[k] for s in sequences]) for k in sequences[0]}

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
