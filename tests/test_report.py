import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import dreamer2
from dreamer2.report import ReportError, read_metrics, write_report

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        dreamer2.train("gym:CartPole-v1", preset="debug", steps=300, logdir=root / f"seed{seed}", seed=seed,
                       progress=False)
    return [root / "seed0", root / "seed1"]


def test_report_holds_curves_diagnostics_and_videos(two_runs, tmp_path):
    page = write_report(two_runs, tmp_path / "report.html").read_text()
    pngs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    gifs = re.findall(r'<img alt="([^"]+)" src="data:image/gif;base64,', page)
    assert "returns gym:CartPole-v1" in pngs
    assert {"world_model", "kl", "latent", "actor", "critic", "grad_norm", "time"} <= set(pngs)
    assert gifs == ["eval_policy", "eval_policy"]  # vector runs: no image observations, so no openl
    assert "<td>seed0</td>" in page and "<td>seed1</td>" in page  # one row per run in the score table


def test_report_renders_in_headless_chromium_without_console_errors(two_runs, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where apt-get is usable)")
    page = write_report(two_runs, tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--v=0", "--virtual-time-budget=5000", "--window-size=1400,2400",
                          f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=180)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000


def test_metrics_of_a_resumed_run_keep_the_latest_value_per_step(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 1, "frames": 4, "a/x": 1.0}, {"step": 2, "frames": 8, "a/x": 2.0},
        {"step": 2, "frames": 8, "a/x": 5.0}, {"step": 3, "frames": 12, "a/x": 3.0}]) + '\n{"step": 4, "a/')
    frames, values = read_metrics(tmp_path)["a/x"]
    assert frames.tolist() == [4, 8, 12] and values.tolist() == [1.0, 5.0, 3.0]  # the cut last line is ignored
    (tmp_path / "metrics.jsonl").write_text('garbage\n{"step": 1, "a/x": 1.0}\n')
    with pytest.raises(ReportError, match="line 1"):
        read_metrics(tmp_path)


def test_report_of_a_folder_that_is_no_logdir_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="not a dreamer2 logdir"):
        write_report([tmp_path], tmp_path / "r.html")


def test_runs_that_differ_only_in_seed_are_one_setting_others_are_named_by_what_differs():
    from dreamer2.report import settings

    base = {"env.task": "gym:CartPole-v1", "precision": "32", "seed": 0, "train.steps": 20000}
    runs = {"a": base, "b": {**base, "seed": 1, "train.steps": 5000},
            "c": {**base, "precision": "bf16"}, "d": {**base, "precision": "bf16", "seed": 1}}
    assert settings(runs) == {"precision=32": ["a", "b"], "precision=bf16": ["c", "d"]}
    assert settings({"a": base, "b": {**base, "seed": 1}}) == {"all runs": ["a", "b"]}
    older = {k: v for k, v in base.items() if k != "precision"}  # a run of a version without the key
    assert settings({"a": base, "b": {**older, "seed": 1}}) == {"all runs": ["a", "b"]}
