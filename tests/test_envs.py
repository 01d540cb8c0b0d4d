import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamer2.config import make_config
from dreamer2.envs import EnvError, GymAdapter, make_env

CONTRACT = ("reward", "is_first", "is_last", "is_terminal")


def check_contract(obs, adapter):
    for key in CONTRACT:
        assert key in obs
    for key, (shape, dtype) in adapter.obs_space.items():
        assert obs[key].shape == shape and obs[key].dtype == dtype
        if len(shape) == 3:
            assert dtype == np.uint8
        else:
            assert dtype == np.float32


def test_vector_env_contract():
    env = make_env("gym:CartPole-v1", make_config("debug"), seed=0)
    obs = env.reset()
    check_contract(obs, env)
    assert obs["is_first"] and not obs["is_last"] and obs["reward"] == 0
    obs = env.step(np.array([1.0, 0.0]))
    check_contract(obs, env)
    assert not obs["is_first"]


def test_pixels_contract():
    env = make_env("gym:CartPole-v1", make_config("debug", {"env.pixels": True}), seed=0)
    obs = env.reset()
    check_contract(obs, env)
    assert set(env.obs_space) == {"image"} and obs["image"].shape == (64, 64, 3)
    assert obs["image"].std() > 0  # a real rendered frame


def test_continuous_actions_are_rescaled():
    env = make_env("gym:Pendulum-v1", make_config("debug"), seed=0)
    assert env.act_space.low.min() == -1 and env.act_space.high.max() == 1
    assert env._env_action(np.array([1.0]))[0] == pytest.approx(2.0)
    assert env._env_action(np.array([-1.0]))[0] == pytest.approx(-2.0)


def test_gymnasium_truncation_is_last_not_terminal():
    env = make_env("gym:Pendulum-v1", make_config("debug"), seed=0)
    env.reset()
    for _ in range(200):
        obs = env.step(np.zeros(1))
    assert obs["is_last"] and not obs["is_terminal"]


def test_time_limit_and_termination():
    env = make_env("gym:CartPole-v1", make_config("debug", {"env.time_limit": 3}), seed=0)
    env.reset()
    flags = [env.step(np.array([1.0, 0.0]))["is_last"] for _ in range(3)]
    assert flags == [False, False, True]
    env = make_env("gym:CartPole-v1", make_config("debug"), seed=0)
    env.reset()
    while not (obs := env.step(np.array([1.0, 0.0])))["is_last"]:
        pass
    assert obs["is_terminal"]  # the pole fell: a real terminal


def test_action_repeat_sums_rewards():
    env = make_env("gym:CartPole-v1", make_config("debug", {"env.action_repeat": 3}), seed=0)
    env.reset()
    assert env.step(np.array([0.0, 1.0]))["reward"] == 3.0


class Weird(gymnasium.Env):
    def __init__(self, obs_space, act_space=spaces.Discrete(2)):
        self.observation_space, self.action_space = obs_space, act_space

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_dict_and_discrete_observations():
    space = spaces.Dict({"pos": spaces.Box(-1, 1, (3,)), "cell": spaces.Discrete(4),
                         "cam": spaces.Box(0, 255, (32, 32, 3), np.uint8)})
    env = GymAdapter(Weird(space), seed=0)
    obs = env.reset()
    check_contract(obs, env)
    assert obs["cell"].shape == (4,) and obs["cell"].sum() == 1
    assert obs["cam"].shape == (64, 64, 3)  # resized to env.size


@pytest.mark.parametrize("space,name", [
    (spaces.MultiDiscrete([3, 4]), "MultiDiscrete"),
    (spaces.Text(5), "Text"),
    (spaces.Dict({"ok": spaces.Box(-1, 1, (2,)), "bad": spaces.Text(3)}), "Text"),
])
def test_unsupported_observation_space_names_it(space, name):
    with pytest.raises(EnvError, match=name):
        GymAdapter(Weird(space))


def test_unsupported_action_space_names_it():
    with pytest.raises(EnvError, match="MultiDiscrete"):
        GymAdapter(Weird(spaces.Box(-1, 1, (2,)), spaces.MultiDiscrete([2, 2])))


def test_unknown_task_is_a_clear_error():
    with pytest.raises(EnvError, match="NoSuchEnv"):
        make_env("gym:NoSuchEnv-v0", make_config("debug"), seed=0)
    with pytest.raises(EnvError, match="SUITE:NAME"):
        make_env("nosuite", make_config("debug"), seed=0)
