"""The ``dreamer2`` command: parsing only; the work is done by the public API."""
from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, parse_overrides
from .report import ReportError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamer2", description="DreamerV2 in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train or resume a run",
                           epilog="Any config key can be set as a dotted option, e.g. --rssm.deter 256 "
                                  "--actor.entropy 1e-3 --env.pixels true.")
    train.add_argument("--logdir", required=True, help="run folder; an existing one is resumed")
    train.add_argument("--preset", default=None, help="config preset(s), comma-separated, stacked on the defaults")
    train.add_argument("--task", default=None, help="e.g. gym:CartPole-v1 (same as --env.task)")
    train.add_argument("--steps", type=int, default=None, help="agent steps to train for (same as --train.steps)")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev = sub.add_parser("eval", help="evaluate a trained run")
    ev.add_argument("--logdir", required=True)
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--task", default=None, help="evaluate on another task string than the run's")
    ev.add_argument("--video", default=None, help="write the first episode to this .mp4 or .gif")
    dream = sub.add_parser("dream", help="video of the world model imagining forward with the actor acting")
    dream.add_argument("--logdir", required=True)
    dream.add_argument("--video", default="dream.mp4", help="the .mp4 or .gif to write")
    dream.add_argument("--sequences", type=int, default=4)
    dream.add_argument("--context", type=int, default=5, help="observed frames before the dream starts")
    dream.add_argument("--horizon", type=int, default=45, help="imagined steps")
    report = sub.add_parser("report", help="one self-contained HTML page from one or more logdirs")
    report.add_argument("logdirs", nargs="+")
    report.add_argument("--out", default="report.html", help="the .html file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    import dreamer2

    args, rest = _parser().parse_known_args(argv)
    try:
        if args.command == "train":
            overrides = parse_overrides(rest)
            if args.task:
                overrides["env.task"] = args.task
            if args.steps is not None:
                overrides["train.steps"] = args.steps
            if args.seed is not None:
                overrides["seed"] = args.seed
            presets = args.preset.split(",") if args.preset else None
            logdir = args.logdir
            print(f"dreamer2: logdir {logdir}", file=sys.stderr)
            dreamer2.train(None, preset=presets, logdir=logdir, overrides=overrides, progress=not args.no_progress)
        elif args.command == "eval":
            if rest:
                raise ConfigError(f"unexpected arguments: {' '.join(rest)}")
            if args.video and not args.video.lower().endswith((".mp4", ".gif")):
                raise ConfigError(f"--video must end in .mp4 or .gif, got {args.video}")
            agent = dreamer2.load(args.logdir)
            stats = dreamer2.evaluate(agent, args.task, episodes=args.episodes, video=args.video)
            print(json.dumps(stats))
        elif args.command == "dream":
            if rest:
                raise ConfigError(f"unexpected arguments: {' '.join(rest)}")
            if not args.video.lower().endswith((".mp4", ".gif")):
                raise ConfigError(f"--video must end in .mp4 or .gif, got {args.video}")
            print(dreamer2.dream(dreamer2.load(args.logdir), args.video, args.sequences, args.context, args.horizon))
        elif args.command == "report":
            if rest:
                raise ConfigError(f"unexpected arguments: {' '.join(rest)}")
            from .report import write_report
            print(write_report(args.logdirs, args.out))
    except (dreamer2.ConfigError, dreamer2.EnvError, dreamer2.ReplayError, dreamer2.CheckpointError,
            FileNotFoundError, ReportError) as err:
        print(f"dreamer2: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dreamer2: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
