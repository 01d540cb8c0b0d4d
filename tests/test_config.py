import pytest

from dreamer2.config import ConfigError, make_config, parse_overrides, presets
from dreamer2.training import prepare_logdir


def test_defaults_are_the_papers():
    cfg = make_config()
    assert (cfg.rssm.stoch, cfg.rssm.discrete, cfg.rssm.deter) == (32, 32, 1024)
    assert cfg.kl.balance == 0.8 and cfg.kl.free == 0.0
    assert (cfg.model_opt.lr, cfg.actor_opt.lr, cfg.critic_opt.lr) == (1e-4, 8e-5, 2e-4)
    assert (cfg.behavior.discount, cfg.behavior.discount_lambda, cfg.behavior.horizon) == (0.99, 0.95, 15)
    assert (cfg.replay.batch, cfg.replay.length) == (16, 50)
    assert cfg.critic.slow_target_update == 100 and cfg.actor.grad_mix == 0.1


def test_presets_stack_and_overrides_are_typed():
    assert {"defaults", "small", "debug"} <= set(presets())
    overrides = parse_overrides(["--rssm.deter", "256", "--actor.entropy=1e-3", "--env.pixels", "true"])
    cfg = make_config("small", overrides)
    assert cfg.rssm.deter == 256 and isinstance(cfg.rssm.deter, int)
    assert cfg.actor.entropy == 1e-3
    assert cfg.env.pixels is True
    assert cfg.rssm.hidden == make_config("small").rssm.hidden  # preset value kept
    assert make_config(["small", "debug"]).rssm.deter == make_config("debug").rssm.deter


def test_unknown_key_names_close_matches():
    with pytest.raises(ConfigError) as err:
        make_config("small", {"rssm.detr": 3})
    message = str(err.value)
    assert "rssm.detr" in message and "rssm.deter" in message and "\n" not in message


def test_wrong_type_is_one_line():
    with pytest.raises(ConfigError) as err:
        make_config("small", parse_overrides(["--rssm.deter", "big"]))
    assert "rssm.deter" in str(err.value) and "big" in str(err.value) and "\n" not in str(err.value)


def test_enum_and_range_checks():
    with pytest.raises(ConfigError, match="actor.grad"):
        make_config(overrides={"actor.grad": "magic"})
    with pytest.raises(ConfigError, match="kl.balance"):
        make_config(overrides={"kl.balance": 1.5})
    with pytest.raises(ConfigError, match="preset 'smal'.*small"):
        make_config("smal")
    with pytest.raises(ConfigError, match="compile_policy needs precision 32"):
        make_config(overrides={"compile_policy": True, "precision": "bf16"})


def test_resume_with_conflicting_config_names_the_keys(tmp_path):
    prepare_logdir(tmp_path, "debug", {"rssm.deter": 16})
    assert (tmp_path / "config.yaml").exists()
    # Same settings, or only a longer run: fine.
    assert prepare_logdir(tmp_path, None, {"train.steps": 999}).train.steps == 999
    assert prepare_logdir(tmp_path, None, None).rssm.deter == 16
    with pytest.raises(ConfigError) as err:
        prepare_logdir(tmp_path, None, {"rssm.deter": 32, "actor.entropy": 0.1})
    assert "rssm.deter: 16 (saved) vs 32 (now)" in str(err.value)
    assert "actor.entropy" in str(err.value)
