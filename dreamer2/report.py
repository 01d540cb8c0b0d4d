"""One self-contained HTML page from one or more logdirs: what a set of runs learned.

Return curves over frames (mean and spread over the seeds of each setting of a task, beside the
reference DreamerV2 curve where the package holds one), the human-normalized score of Atari runs, every
logged loss and diagnostic grouped by module, and the latest policy and open-loop videos. Plots
are PNGs and videos animated GIFs, all inlined as base64, so the page is one file that can be
mailed or archived.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import scores
from .logger import channels_to_rgb

RETURN_KEYS = ("eval/return", "episode/return")
VIDEOS = ("eval_policy", "train_policy", "openl")


class ReportError(ValueError):
    """A logdir the report cannot read, phrased for the user."""


def read_metrics(logdir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (frames, values)}`` from ``metrics.jsonl``; a step logged twice (a resumed run
    repeats the steps after its last checkpoint) keeps its latest value."""
    path = Path(logdir) / "metrics.jsonl"
    if not path.exists():
        raise ReportError(f"{logdir} has no metrics.jsonl: not a dreamer2 logdir")
    by_step: dict[int, dict[str, float]] = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # a line cut by a crash mid-write
            raise ReportError(f"{path}: line {number} is not JSON") from None
        by_step.setdefault(int(record["step"]), {}).update(record)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for step in sorted(by_step):
        record = by_step[step]
        for name, value in record.items():
            if name not in ("step", "frames") and isinstance(value, (int, float)) and math.isfinite(value):
                series[name].append((float(record.get("frames", step)), float(value)))
    return {name: (np.array([x for x, _ in pts]), np.array([y for _, y in pts])) for name, pts in series.items()}


def read_config(logdir: Path) -> dict[str, object]:
    """The run's resolved config as ``{dotted.key: value}``."""
    from omegaconf import OmegaConf

    from .config import flatten

    path = Path(logdir) / "config.yaml"
    if not path.exists():
        raise ReportError(f"{logdir} has no config.yaml: not a dreamer2 logdir")
    return flatten(OmegaConf.to_container(OmegaConf.load(path)))


def settings(configs: dict[str, dict[str, object]]) -> dict[str, list[str]]:
    """Group runs into settings: runs whose configs differ only in the seed and in keys that do not
    change what is learned (run length, logging, device: those a resume may change) are seeds of one
    setting. Each setting is named by its values of the keys that differ between settings (e.g.
    ``precision=bf16``), or ``all runs`` when there is one. Keys some configs lack are ignored."""
    from .config import RESUMABLE_KEYS

    # Keys missing from some configs come from other versions of dreamer2: not compared.
    shared = set.intersection(*(set(cfg) for cfg in configs.values())) - set(RESUMABLE_KEYS) - {"seed"}
    keys = {label: tuple(sorted((k, repr(v)) for k, v in cfg.items() if k in shared))
            for label, cfg in configs.items()}
    groups: dict[tuple, list[str]] = defaultdict(list)
    for label, key in keys.items():
        groups[key].append(label)
    if len(groups) == 1:
        return {"all runs": next(iter(groups.values()))}
    varying = sorted({k for key in groups for k, v in key if any((k, v) not in other for other in groups)})
    return {", ".join(f"{k}={configs[labels[0]][k]}" for k in varying): labels for labels in groups.values()}


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gif(path: Path, max_frames: int = 300, width: int = 320) -> str:
    """The video as an inlined animated GIF (every browser plays it; mp4 codecs vary)."""
    import imageio.v2 as imageio

    frames = np.stack(imageio.mimread(path, memtest=False)[:max_frames])
    frames = frames[:, ::max(1, frames.shape[1] // width), ::max(1, frames.shape[2] // width)]
    buffer = io.BytesIO()
    imageio.mimsave(buffer, list(channels_to_rgb(frames)), format="gif", duration=1000 / 16, loop=0)
    return "data:image/gif;base64," + base64.b64encode(buffer.getvalue()).decode()


def _mean_spread(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation over runs on a common frame grid (where all runs have data)."""
    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    grid = np.linspace(lo, hi, 50) if hi > lo else np.array([lo])
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.std(0)


def return_plot(task: str, runs: dict[str, dict], ax, groups: dict[str, list[str]] | None = None) -> list[str]:
    """Draw the return curves of one task, one colour per setting (``groups``: name -> run labels;
    default: all runs are seeds of one setting) with mean and spread over its seeds; return notes
    for the page (e.g. the reference's range)."""
    notes = []
    groups = groups or {"all runs": list(runs)}
    for colour, (name, labels) in enumerate(groups.items()):
        prefix = "" if len(groups) == 1 else f"{name}: "
        for key, style in zip(RETURN_KEYS, ("-", ":")):
            curves = [runs[label][key] for label in labels if key in runs[label] and len(runs[label][key][0])]
            if not curves:
                continue
            if len(curves) == 1:
                ax.plot(*curves[0], style, color=f"C{colour}", label=f"{prefix}{key} (1 run)")
            else:
                grid, mean, std = _mean_spread(curves)
                ax.plot(grid, mean, style, color=f"C{colour}", label=f"{prefix}{key} (mean of {len(curves)} runs)")
                ax.fill_between(grid, mean - std, mean + std, color=f"C{colour}", alpha=0.2)
    try:
        ref = scores.reference_curve(task)
    except KeyError:
        ref = None
    if ref is not None:
        top = max((run[k][0][-1] for run in runs.values() for k in RETURN_KEYS if k in run), default=0.0)
        if top < ref["xs"][0]:  # plotting it would squeeze the runs into the left edge
            first = ref["ys"][:, 0]
            notes.append(f"The reference DreamerV2 curve starts at {ref['xs'][0]:.3g} frames, past these runs "
                         f"({top:.3g} frames); there its return is {first.mean():.1f} +- {first.std():.1f} "
                         f"over {ref['seeds']} seeds.")
        else:
            keep = ref["xs"] <= top * 1.05
            mean, std = ref["ys"].mean(0)[keep], ref["ys"].std(0)[keep]
            ax.plot(ref["xs"][keep], mean, "k--", label=f"reference DreamerV2 ({ref['seeds']} seeds)")
            ax.fill_between(ref["xs"][keep], mean - std, mean + std, color="k", alpha=0.1)
    ax.set_xlabel("frames")
    ax.set_ylabel("return")
    ax.set_title(task)
    ax.legend(fontsize=8)
    return notes


def group_plots(runs: dict[str, dict]) -> dict[str, str]:
    """One figure per module prefix (world_model, kl, latent, actor, critic, ...): a panel per metric."""
    import matplotlib.pyplot as plt

    groups: dict[str, set[str]] = defaultdict(set)
    for metrics in runs.values():
        for name in metrics:
            groups[name.split("/")[0]].add(name)
    figures = {}
    for group in sorted(groups):
        names = sorted(groups[group])
        cols = min(4, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            for label, metrics in runs.items():
                if name in metrics:
                    ax.plot(*metrics[name], label=label)
            ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        figures[group] = _png(fig)
    return figures


def latest_videos(logdir: Path) -> dict[str, Path]:
    found = {}
    for kind in VIDEOS:
        paths = sorted((Path(logdir) / "videos").glob(f"{kind}-*.mp4"))
        if paths:
            found[kind] = paths[-1]
    return found


def write_report(logdirs: list[str | Path], out: str | Path) -> Path:
    """Write the report page for ``logdirs`` to ``out`` (.html) and return its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not logdirs:
        raise ReportError("give at least one logdir")
    runs: dict[str, dict] = {}
    configs: dict[str, dict[str, object]] = {}
    for logdir in map(Path, logdirs):
        label = logdir.name if logdir.name not in runs else str(logdir)
        runs[label], configs[label] = read_metrics(logdir), read_config(logdir)
    by_task: dict[str, dict[str, dict]] = defaultdict(dict)
    for label, config in configs.items():
        by_task[str(config["env.task"])][label] = runs[label]

    body = [f"<h1>dreamer2 report</h1><p>{len(runs)} run(s): "
            + ", ".join(f"<code>{html.escape(str(d))}</code>" for d in logdirs) + "</p>"]
    body.append("<h2>Returns</h2>")
    for task, task_runs in by_task.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        notes = return_plot(task, task_runs, ax, settings({label: configs[label] for label in task_runs}))
        body.append(f'<img alt="returns {html.escape(task)}" src="{_png(fig)}">')
        body += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
        rows = []
        for label, metrics in task_runs.items():
            final = metrics.get("eval/return", metrics.get("episode/return"))
            score = final[1][-1] if final is not None else float("nan")
            try:
                normalized = f"{scores.human_normalized(task, score):.3f}"
            except KeyError:
                normalized = "n/a (not an Atari game)"
            frames = final[0][-1] if final is not None else float("nan")
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{frames:.0f}</td><td>{score:.2f}</td>"
                        f"<td>{normalized}</td></tr>")
        body.append("<table><tr><th>run</th><th>frames</th><th>last eval return</th>"
                    "<th>human-normalized</th></tr>" + "".join(rows) + "</table>")
    body.append("<h2>Losses and diagnostics, by module</h2>")
    for group, src in group_plots(runs).items():
        body.append(f'<h3>{html.escape(group)}</h3><img alt="{html.escape(group)}" src="{src}">')
    body.append("<h2>Latest videos</h2>")
    for logdir in map(Path, logdirs):
        videos = latest_videos(logdir)
        if not videos:
            continue
        body.append(f"<h3>{html.escape(logdir.name)}</h3><div class=videos>")
        for kind, path in videos.items():
            body.append(f'<figure><img alt="{kind}" src="{_gif(path)}"><figcaption>{kind}: '
                        f'{html.escape(path.name)}</figcaption></figure>')
        body.append("</div>")
    page = ("<!doctype html><html><head><meta charset=utf-8><title>dreamer2 report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1400px}img{max-width:100%}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
            ".videos{display:flex;flex-wrap:wrap;gap:1em}.note{color:#666}</style></head><body>"
            + "\n".join(body)
            # A self-check: an image that fails to decode is reported on the browser's console.
            + "<script>window.addEventListener('load',()=>{for(const i of document.images)"
              "{if(!i.naturalWidth)console.error('image failed to load: '+i.alt)}})</script></body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from .replay import atomic_write
    atomic_write(out, page.encode())
    return out
