import pytest

from dreamer2.scores import baselines, human_normalized, reference_curve, task_key


def test_task_keys():
    assert task_key("atari:Breakout") == "atari_breakout"
    assert task_key("atari:SpaceInvaders") == "atari_space_invaders"
    assert task_key("atari:space_invaders") == "atari_space_invaders"
    assert task_key("dmc:walker_walk") == "dmc_walker_walk"


def test_human_normalized_is_0_for_random_and_1_for_human():
    for game in ("atari:Breakout", "atari:Pong", "atari:MontezumaRevenge"):
        base = baselines()[task_key(game)]
        assert human_normalized(game, base["random"]) == pytest.approx(0.0)
        assert human_normalized(game, base["human_gamer"]) == pytest.approx(1.0)
    with pytest.raises(KeyError):
        human_normalized("atari:NoSuchGame", 1.0)


def test_reference_curve_at_frames_matches_published_numbers():
    assert reference_curve("atari:Pong", 5e6)["mean"] == pytest.approx(11.3, abs=0.5)
    assert reference_curve("dmc:walker_walk", 2e5)["mean"] == pytest.approx(786, abs=2)
    assert reference_curve("dmc:cartpole_balance", 1e5)["mean"] == pytest.approx(854, abs=2)
    curve = reference_curve("atari:Breakout")
    assert curve["ys"].shape == (curve["seeds"], len(curve["xs"]))


def test_reference_curve_refuses_frames_outside_the_record():
    start = reference_curve("atari:Boxing")["xs"][0]
    with pytest.raises(ValueError, match="covers"):
        reference_curve("atari:Boxing", start / 2)
