import json
import subprocess
import sys


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dreamer2.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_train_then_eval(tmp_path):
    logdir = str(tmp_path / "run")
    result = run("train", "--logdir", logdir, "--preset", "debug", "--task", "gym:CartPole-v1", "--steps", "200",
                 "--rssm.deter", "24")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step" in result.stderr  # the progress bar
    video = tmp_path / "cartpole.gif"
    result = run("eval", "--logdir", logdir, "--episodes", "2", "--video", str(video))
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout)
    assert stats["episodes"] == 2 and stats["length_mean"] > 0
    import imageio.v2 as imageio
    frames = imageio.mimread(video, memtest=False)
    assert len(frames) >= 5 and frames[0].shape[:2] == (400, 600)  # CartPole's own rendering
    assert list((tmp_path / "run" / "videos").glob("eval_policy-*.mp4"))


def test_cli_bad_input_is_one_line(tmp_path):
    result = run("train", "--logdir", str(tmp_path / "x"), "--preset", "debug", "--rssm.detr", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("dreamer2: error: unknown config key 'rssm.detr'")
    assert "Traceback" not in result.stderr
    result = run("train", "--logdir", str(tmp_path / "y"), "--preset", "debug", "--task", "gym:CartPole-v1",
                 "--env.pixels", "maybe")
    assert result.returncode == 2 and "env.pixels" in result.stderr and "Traceback" not in result.stderr
    result = run("eval", "--logdir", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "not a dreamer2 logdir" in result.stderr


def test_cli_resume_with_other_config_is_refused(tmp_path):
    logdir = str(tmp_path / "run")
    assert run("train", "--logdir", logdir, "--preset", "debug", "--steps", "150").returncode == 0
    result = run("train", "--logdir", logdir, "--rssm.deter", "48")
    assert result.returncode == 2 and "rssm.deter" in result.stderr and "Traceback" not in result.stderr
