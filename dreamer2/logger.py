"""Where metrics go: a terminal progress bar, ``metrics.jsonl`` and TensorBoard event files."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


class Logger:
    """Averages scalars between writes; each ``write(step)`` appends one JSON line and the
    same scalars to TensorBoard. Names say what they are: ``world_model/kl``, ``episode/return``."""

    def __init__(self, logdir: Path, total_steps: int, initial_step: int = 0, action_repeat: int = 1,
                 progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(logdir)
        self.action_repeat = action_repeat
        self._jsonl = open(self.logdir / "metrics.jsonl", "a")
        self._tb = SummaryWriter(str(self.logdir))
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self._last_time, self._last_step = time.time(), initial_step
        self._bar = None
        self._postfix: dict[str, str] = {}
        if progress:
            from tqdm import tqdm
            self._bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                             smoothing=0.05)

    def scalar(self, name: str, value: float) -> None:
        self._sums[name] += float(value)
        self._counts[name] += 1

    def scalars(self, metrics: dict[str, float], prefix: str = "") -> None:
        for name, value in metrics.items():
            self.scalar(prefix + name, value)

    def progress(self, step: int, **postfix: float) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            for key, value in postfix.items():
                self._postfix[key] = f"{value:.1f}"
            if postfix:
                self._bar.set_postfix(self._postfix, refresh=False)

    def write(self, step: int, fps: bool = True) -> dict[str, Any]:
        """Flush the averages of everything logged since the last write, at ``step``."""
        now = time.time()
        record: dict[str, Any] = {"step": int(step), "frames": int(step * self.action_repeat)}
        if fps and now > self._last_time and step > self._last_step:
            self.scalar("train/fps", (step - self._last_step) / (now - self._last_time))
        for name in sorted(self._sums):
            record[name] = self._sums[name] / self._counts[name]
        self._sums.clear()
        self._counts.clear()
        self._last_time, self._last_step = now, step
        if len(record) > 2:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
            for name, value in record.items():
                if name not in ("step", "frames") and np.isfinite(value):
                    self._tb.add_scalar(name, value, step)
            self._tb.flush()
        return record

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._jsonl.close()
        self._tb.close()
