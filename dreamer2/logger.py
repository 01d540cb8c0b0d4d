"""Where metrics go: a terminal progress bar, ``metrics.jsonl``, TensorBoard event files, videos."""
from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def channels_to_rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [T, H, W, C] as RGB: grey stays grey, RGB stays, any other channel count (e.g.
    MinAtar's binary layers) gets one colour per channel, so every image key can be watched."""
    frames = np.asarray(frames, np.uint8)
    channels = frames.shape[-1]
    if channels == 3:
        return frames
    if channels == 1:
        return frames.repeat(3, -1)
    hues = np.linspace(0, 150, channels, endpoint=False).astype(np.uint8)  # OpenCV hue range is 0..179
    palette = cv2.cvtColor(np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 255)], -1)[None],
                           cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255  # [C, 3]
    rgb = np.einsum("thwc,cd->thwd", frames.astype(np.float32), palette)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 16) -> Path:
    """Encode uint8 frames [T, H, W, C] as .mp4 (ffmpeg) or .gif, chosen by the extension."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = channels_to_rgb(frames)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    elif path.suffix.lower() == ".mp4":
        pad = [(0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)]  # H.264 wants even sizes
        imageio.mimsave(path, list(np.pad(frames, pad)), fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name}")
    return path


def _gif_bytes(frames: np.ndarray, fps: int) -> bytes:
    import imageio.v2 as imageio

    buffer = io.BytesIO()
    imageio.mimsave(buffer, list(channels_to_rgb(frames)), format="gif",
                    duration=1000 / fps, loop=0)
    return buffer.getvalue()


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

    def scalar(self, name: str, value: float, last: bool = False) -> None:
        """Add a value to this interval's average; ``last`` keeps only the latest value instead
        (for running totals such as success rates, whose average over the interval means nothing)."""
        if last:
            self._sums[name], self._counts[name] = float(value), 1
        else:
            self._sums[name] += float(value)
            self._counts[name] += 1

    def scalars(self, metrics: dict[str, float], prefix: str = "", last: bool = False) -> None:
        for name, value in metrics.items():
            self.scalar(prefix + name, value, last)

    def video(self, name: str, frames: np.ndarray, step: int, fps: int = 16) -> Path:
        """Write ``LOGDIR/videos/NAME-STEP.mp4`` and an animated GIF into TensorBoard's images."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        frames = np.asarray(frames, np.uint8)  # [T, H, W, C]
        path = write_video(self.logdir / "videos" / f"{name}-{int(step):010d}.mp4", frames, fps)
        small = frames[:, ::max(1, frames.shape[1] // 128), ::max(1, frames.shape[2] // 128)][:500]  # keep TB light
        image = Summary.Image(height=small.shape[1], width=small.shape[2], colorspace=3,
                              encoded_image_string=_gif_bytes(small, fps))
        self._tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=name, image=image)]), int(step))
        self._tb.flush()
        return path

    def stage(self, name: str) -> None:
        """Name what the run is doing now (prefill, pretrain, train) in the progress bar."""
        if self._bar is not None:
            self._postfix.pop("pretrain", None)
            self._bar.set_description(name)

    def progress(self, step: int, **postfix: float) -> None:
        if self._bar is not None:
            if step > self._bar.n:
                self._bar.update(step - self._bar.n)
            for key, value in postfix.items():
                self._postfix[key] = f"{value:.1f}" if isinstance(value, float) else str(value)
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
