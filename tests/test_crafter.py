import json

import numpy as np
import pytest

import dreamer2
from dreamer2.config import make_config
from dreamer2.envs import EnvError, make_env
from dreamer2.scores import Achievements, crafter_score

pytest.importorskip("crafter")


def test_crafter_score_by_hand():
    assert crafter_score([0.0] * 22) == pytest.approx(0.0)
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)
    # exp(mean(ln 2, ln 11)) - 1 = sqrt(22) - 1
    assert crafter_score({"a": 1.0, "b": 10.0}) == pytest.approx(22 ** 0.5 - 1)


def test_achievement_rates_count_episodes_with_the_achievement():
    tally = Achievements()
    ep = lambda wood, drink: {"reward": np.zeros(3), "log_achievement_collect_wood": np.array([[0], [0], [wood]]),
                              "log_achievement_collect_drink": np.array([[0], [drink], [drink]])}
    tally.add(ep(1, 0))
    metrics = tally.add(ep(2, 1))
    assert metrics["achievements/collect_wood"] == 100.0 and metrics["achievements/collect_drink"] == 50.0
    assert metrics["achievements/score"] == pytest.approx(crafter_score([100.0, 50.0]))
    assert Achievements().add({"reward": np.zeros(2)}) == {}


def test_adapter_contract_and_log_keys_unseen_by_the_model():
    cfg = make_config("crafter", {"env.task": "crafter:reward"})
    env = make_env(cfg.env.task, cfg, seed=0)
    obs = env.reset()
    assert env.obs_space["image"] == ((64, 64, 3), np.dtype(np.uint8)) and env.act_space.n == 17
    assert sum(k.startswith("log_achievement_") for k in env.obs_space) == 22
    assert obs["log_achievement_collect_wood"].shape == (1,)
    agent = dreamer2.Agent(make_config(["crafter", "debug"]), env.obs_space, env.act_space)
    assert agent.wm.enc_cnn == ["image"] and agent.wm.enc_mlp == [] and agent.wm.dec_mlp == []
    with pytest.raises(EnvError, match="crafter:reward"):
        make_env("crafter:rewards", cfg, seed=0)


def test_smoke_training_logs_achievements_and_score(tmp_path):
    dreamer2.train("crafter:reward", preset=["crafter", "debug"], steps=300, logdir=tmp_path / "run",
                   overrides={"env.time_limit": 100}, progress=False)
    logged = {}
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        logged.update(json.loads(line))
    assert "achievements/score" in logged and "achievements/collect_wood" in logged
    assert sum(k.startswith("achievements/") for k in logged) == 23


def test_logged_rates_are_the_latest_not_their_average(tmp_path):
    """Success rates are running totals: a log line must show the rate over all episodes so far
    (50% after a success and a failure), not the mean of the running rates (75%)."""
    from dreamer2.logger import Logger

    logger, tally = Logger(tmp_path, total_steps=10, progress=False), Achievements()
    ep = lambda wood: {"reward": np.zeros(2), "log_achievement_collect_wood": np.array([[0], [wood]])}
    for wood in (1, 0):
        logger.scalars(tally.add(ep(wood)), last=True)
        logger.scalar("episode/return", 2.0 * wood)
    record = logger.write(10, fps=False)
    logger.close()
    assert record["achievements/collect_wood"] == 50.0
    assert record["episode/return"] == 1.0  # ordinary scalars are still averaged
