import json
import os
import signal
import subprocess
import sys
import time

import gymnasium
import numpy as np
import pytest
import torch

import dreamer2
from dreamer2.config import make_config
from dreamer2.agent import Agent
from dreamer2.envs import make_env
from dreamer2.replay import Replay, load_episode
from dreamer2.training import CheckpointError, load_checkpoint, save_checkpoint


def losses(logdir):
    rows = [json.loads(line) for line in open(logdir / "metrics.jsonl")]
    return [(r["step"], r["world_model/loss"], r["actor/loss"]) for r in rows if "world_model/loss" in r]


def test_smoke_cartpole_vector_and_api(tmp_path):
    agent = dreamer2.train("gym:CartPole-v1", preset="debug", steps=300, logdir=tmp_path / "run", progress=False)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "episodes"} <= files
    assert any(name.startswith("events.out.tfevents") for name in files)
    metrics = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    keys = set().union(*metrics)
    for key in ("world_model/kl", "world_model/reward_loss", "actor/entropy", "critic/loss", "episode/return",
                "eval/return", "world_model/grad_norm", "train/fps"):
        assert key in keys, key
    stats = dreamer2.evaluate(agent, "gym:CartPole-v1", episodes=2)
    assert set(stats) == {"return_mean", "return_std", "length_mean", "episodes"} and stats["episodes"] == 2
    loaded = dreamer2.load(tmp_path / "run")
    env = make_env("gym:CartPole-v1", loaded.cfg, seed=0)
    obs, state = env.reset(), None
    for _ in range(5):
        action, state = loaded.act(obs, state)
        assert action.shape == (2,) and action.sum() == pytest.approx(1.0)
        obs = env.step(action)


def test_smoke_pixels_continuous_and_custom_env(tmp_path):
    import gymnasium
    dreamer2.train(lambda: gymnasium.make("Pendulum-v1"), preset="debug", steps=250, logdir=tmp_path / "pend",
                   overrides={"train.videos": False}, progress=False)
    assert "eval/return" in set().union(*map(json.loads, open(tmp_path / "pend" / "metrics.jsonl")))
    assert not (tmp_path / "pend" / "videos").exists()
    agent = dreamer2.train("gym:CartPole-v1", preset="debug", steps=250, logdir=tmp_path / "pix",
                           overrides={"env.pixels": True}, progress=False)
    assert agent.wm.enc_cnn == ["image"]
    episode = load_episode(next((tmp_path / "pix" / "episodes").glob("*.npz")))
    assert episode["image"].shape[1:] == (64, 64, 3) and episode["image"].dtype == np.uint8
    assert (episode["action"][0] == 0).all()  # the reset step has no action that led to it


def test_checkpoint_round_trip_bitwise(tmp_path):
    cfg = make_config("debug")
    env = make_env("gym:CartPole-v1", cfg, seed=0)
    replay = Replay(tmp_path / "episodes", 1000, cfg.replay.length)
    a = Agent(cfg, env.obs_space, env.act_space)
    batch = {k: v[None].repeat(2, 0) for k, v in _episode(env, 12).items()}
    for _ in range(3):
        a.update(batch)
    save_checkpoint(tmp_path / "checkpoint.pt", a, 123, replay)
    torch.manual_seed(99)
    b = Agent(cfg, env.obs_space, env.act_space)
    assert load_checkpoint(tmp_path / "checkpoint.pt", b, replay) == 123
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    for opt in ("model_opt", "actor_opt", "critic_opt"):
        sa, sb = getattr(a, opt).opt.state_dict(), getattr(b, opt).opt.state_dict()
        assert sa["state"].keys() == sb["state"].keys() and sa["state"]
        for k in sa["state"]:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(sa["state"][k][name], sb["state"][k][name])


def test_warmup_ramps_the_rate_linearly_and_resumes_where_it_stopped(tmp_path):
    """``actor_opt.warmup 4``: the actor's steps take 1/4, 2/4, 3/4 of its rate, then all of it,
    also across a checkpoint; the critic (warmup 0) takes its full rate from the first step."""
    cfg = make_config("debug", {"actor_opt.warmup": 4})
    env = make_env("gym:CartPole-v1", cfg, seed=0)
    batch = {k: v[None].repeat(2, 0) for k, v in _episode(env, 12).items()}
    a = Agent(cfg, env.obs_space, env.act_space)
    rates = [a.update(batch) for _ in range(2)]
    save_checkpoint(tmp_path / "checkpoint.pt", a, 2, Replay(tmp_path / "episodes", 1000, cfg.replay.length))
    b = Agent(cfg, env.obs_space, env.act_space)
    load_checkpoint(tmp_path / "checkpoint.pt", b)
    rates += [b.update(batch) for _ in range(3)]
    lr = cfg.actor_opt.lr
    assert [m["actor/lr"] for m in rates] == pytest.approx([lr / 4, lr / 2, 3 * lr / 4, lr, lr])
    assert [m["critic/lr"] for m in rates] == pytest.approx([cfg.critic_opt.lr] * 5)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    cfg = make_config("debug")
    env = make_env("gym:CartPole-v1", cfg, seed=0)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "checkpoint.pt", Agent(cfg, env.obs_space, env.act_space))


def _episode(env, steps):
    rng = np.random.default_rng(0)
    obs = env.reset()
    steps_ = [{**obs, "action": np.zeros(2, np.float32)}]
    for _ in range(steps):
        action = env.random_action(rng)
        obs = env.step(action)
        steps_.append({**obs, "action": action})
        if obs["is_last"]:
            obs = env.reset()
            steps_.append({**obs, "action": np.zeros(2, np.float32)})
    return {k: np.stack([s[k] for s in steps_[:steps]]) for k in steps_[0]}


def test_best_evaluation_weights_are_kept_and_survive_a_resume(tmp_path):
    logdir = tmp_path / "run"
    overrides = {"train.eval_every": 50, "train.videos": False}
    dreamer2.train("gym:CartPole-v1", preset="debug", steps=300, logdir=logdir, progress=False, overrides=overrides)
    evals = [(r["step"], r["eval/return"]) for r in map(json.loads, open(logdir / "metrics.jsonl")) if "eval/return" in r]
    assert [step for step, _ in evals] == [100, 150, 200, 250, 300]  # each at its own step, from the prefill's end
    assert len({ret for _, ret in evals}) > 1  # several different evaluations to choose from
    best_step, best_ret = max(evals, key=lambda e: e[1])  # the first of the best on ties
    saved = torch.load(logdir / "best.pt", weights_only=False)
    assert saved["eval_return"] == best_ret and saved["step"] == best_step
    assert "model_opt" not in saved  # weights only
    best = dreamer2.load(logdir, checkpoint="best")
    assert best.step == best_step
    for name, value in best.state_dict().items():
        assert torch.equal(value, saved["agent"][name]), name
    assert dreamer2.load(logdir).step == 300
    # A resumed run keeps the old best unless it beats it.
    dreamer2.train("gym:CartPole-v1", preset="debug", steps=400, logdir=logdir, progress=False, overrides=overrides)
    evals = [(r["step"], r["eval/return"]) for r in map(json.loads, open(logdir / "metrics.jsonl")) if "eval/return" in r]
    assert torch.load(logdir / "best.pt", weights_only=False)["eval_return"] == max(ret for _, ret in evals)
    (logdir / "best.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        dreamer2.train("gym:CartPole-v1", preset="debug", steps=500, logdir=logdir, progress=False, overrides=overrides)
    with pytest.raises(ValueError, match="'last' or 'best'"):
        dreamer2.load(logdir, checkpoint="newest")


def test_a_run_shorter_than_its_prefill_stops_at_its_length(tmp_path):
    logdir = tmp_path / "run"
    dreamer2.train("gym:CartPole-v1", preset="debug", steps=60, logdir=logdir, progress=False,
                   overrides={"train.prefill": 1000, "train.eval_episodes": 1})
    steps = [json.loads(line)["step"] for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 60  # not the 1,000 of the prefill


def test_resume_continues_step_counter(tmp_path):
    logdir = tmp_path / "run"
    dreamer2.train("gym:CartPole-v1", preset="debug", steps=200, logdir=logdir, progress=False)
    first = losses(logdir)
    episodes = len(list((logdir / "episodes").glob("*.npz")))
    dreamer2.train("gym:CartPole-v1", preset="debug", steps=400, logdir=logdir, progress=False)
    second = losses(logdir)[len(first):]
    assert second and second[0][0] > first[-1][0]  # steps continue, not restart at 0
    assert max(s for s, _, _ in second) >= 400
    assert len(list((logdir / "episodes").glob("*.npz"))) > episodes


def test_same_seed_same_losses(tmp_path):
    for name in ("a", "b"):
        dreamer2.train("gym:CartPole-v1", preset="debug", steps=1000, logdir=tmp_path / name, seed=3, progress=False,
                       overrides={"train.log_every": 50})
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) >= 15 and a == b


def test_kill_9_then_resume_loses_no_finished_episode(tmp_path):
    logdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "dreamer2.cli", "train", "--logdir", str(logdir), "--preset", "debug",
           "--steps", "100000", "--no-progress", "--train.checkpoint_every", "50"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (logdir / "checkpoint.pt").exists():
        time.sleep(0.2)
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    files = sorted((logdir / "episodes").glob("*.npz"))
    assert files
    steps_on_disk = sum(len(load_episode(p)["reward"]) - 1 for p in files)  # every file readable
    resume = subprocess.run(cmd[:-2] + ["--train.checkpoint_every", "50", "--steps", str(steps_on_disk + 60)],
                            capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stderr[-2000:]
    after = sorted((logdir / "episodes").glob("*.npz"))
    assert set(files) <= set(after)  # nothing finished before the kill was lost
    steps = [json.loads(line)["step"] for line in open(logdir / "metrics.jsonl")]
    assert max(steps) >= steps_on_disk + 60


def test_sigterm_stops_a_run_that_has_rendered_frames(tmp_path):
    """SDL (pygame renders CartPole's frames) must not swallow SIGTERM: `kill` has to stop a run."""
    logdir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "dreamer2.cli", "train", "--logdir", str(logdir), "--preset",
                             "debug", "--steps", "100000", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((logdir / "videos").glob("eval_policy-*.mp4")):
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended early"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()  # never leave a run behind when the test fails
        proc.wait()


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_keeps_fp32_weights_and_outputs_and_saves_the_scaler(tmp_path, precision):
    cfg = make_config("debug", {"precision": precision})
    env = make_env("gym:CartPole-v1", cfg, seed=0)
    a = Agent(cfg, env.obs_space, env.act_space)
    batch = {k: v[None].repeat(2, 0) for k, v in _episode(env, 12).items()}
    metrics = [a.update(batch) for _ in range(3)][-1]
    assert all(p.dtype == torch.float32 for p in a.parameters())
    assert all(np.isfinite(metrics[k]) for k in ("world_model/loss", "actor/loss", "critic/loss"))
    with a.autocast():
        assert a.wm.reward(torch.zeros(3, a.wm.rssm.feat_dim)).mode().dtype == torch.float32  # heads in fp32
    if precision == "16":
        assert metrics["precision/world_model_loss_scale"] > 0 and "precision/actor_skipped" in metrics
        a.model_opt.skipped = 7
    save_checkpoint(tmp_path / "checkpoint.pt", a, 5, Replay(tmp_path / "episodes", 1000, cfg.replay.length))
    b = Agent(cfg, env.obs_space, env.act_space)
    load_checkpoint(tmp_path / "checkpoint.pt", b)
    assert b.model_opt.scaler.state_dict() == a.model_opt.scaler.state_dict()
    assert b.model_opt.skipped == a.model_opt.skipped


def test_fp16_step_whose_gradients_overflow_is_skipped_and_the_scale_halved():
    """Under fp16 loss scaling a step with an inf gradient must leave the weights and Adam's
    state as they were (the fused kernel skips it), halve the scale and count the skip; the
    next finite step moves the weights again."""
    from dreamer2.agent import Optimizer
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    opt = Optimizer("test", layer, make_config("debug").model_opt, fp16=True)
    x = torch.randn(4, 3)
    opt.step(layer(x).square().sum())
    weight, state = layer.weight.detach().clone(), {k: v.clone() for k, v in opt.opt.state[layer.weight].items()}
    scale = opt.scaler.get_scale()
    metrics = opt.step(layer(x).sum() * torch.tensor(float("inf")))
    assert torch.equal(layer.weight, weight) and metrics["precision/test_skipped"] == 1
    assert all(torch.equal(opt.opt.state[layer.weight][k], v) for k, v in state.items())
    assert opt.scaler.get_scale() == scale / 2
    opt.step(layer(x).square().sum())
    assert not torch.equal(layer.weight, weight)


@pytest.mark.parametrize("speedup", [0.6, 1.8])
def test_bf16_on_a_cpu_where_it_is_slower_warns_at_construction(monkeypatch, speedup):
    """Where a bf16 matrix product is slower than an fp32 one (emulated on AVX2; 0.6x on a Xeon
    without AMX) the agent says so at construction, with the measured speed, and only there: not
    where bf16 is faster, and fp32 does not even measure it."""
    import warnings

    from dreamer2 import agent as agent_module
    calls = []
    monkeypatch.setattr(agent_module, "cpu_bf16_matmul_speedup", lambda: calls.append(1) or speedup)
    env = make_env("gym:CartPole-v1", make_config("debug"), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Agent(make_config("debug", {"precision": "bf16"}), env.obs_space, env.act_space)
        Agent(make_config("debug"), env.obs_space, env.act_space)
    slow = [str(w.message) for w in caught if "slower than fp32" in str(w.message)]
    assert len(calls) == 1
    assert slow == ([] if speedup >= 1 else [slow[0]]) and (speedup >= 1 or f"{speedup:.2f}x" in slow[0])


def test_the_bf16_speed_probe_is_the_ratio_of_the_fastest_products_measured_once(monkeypatch):
    """Interleaved fp32 and bf16 products, the fastest of each: with a clock that makes them take
    3, 2, 4 (fp32) and 1, 1.5, 0.5 (bf16) ticks, bf16 is 2 / 0.5 = 4x as fast. Measured once per
    process: a second call reads the cache."""
    from dreamer2.agent import cpu_bf16_matmul_speedup
    ticks = iter([0, 3, 10, 11, 20, 22, 30, 31.5, 40, 44, 50, 50.5])  # start, end of each product
    with monkeypatch.context() as patch:
        patch.setattr(time, "perf_counter", lambda: next(ticks))
        assert cpu_bf16_matmul_speedup.__wrapped__(size=8, reps=3) == 4.0
    cpu_bf16_matmul_speedup.cache_clear()
    first = cpu_bf16_matmul_speedup(size=64, reps=3)
    assert first > 0 and cpu_bf16_matmul_speedup(size=64, reps=3) == first
    assert cpu_bf16_matmul_speedup.cache_info().hits == 1


def _image_vector_batch(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    """A training batch for an agent of 64x64x3 images, 4-vectors and 3 discrete actions, whose
    sequences each start an episode."""
    return {"image": rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8),
            "vector": rng.normal(size=(batch, length, 4)).astype(np.float32),
            "action": np.eye(3, dtype=np.float32)[rng.integers(3, size=(batch, length))],
            "reward": rng.normal(size=(batch, length)).astype(np.float32),
            "is_first": np.eye(length, dtype=bool)[[0] * batch],
            "is_last": np.zeros((batch, length), bool), "is_terminal": np.zeros((batch, length), bool)}


def test_acting_under_bf16_reads_cached_casts_that_follow_every_weight_change():
    """Acting casts its weights once per change instead of on every step: the casts are the ones
    autocast makes, so the step must equal the plain autocast step bit for bit (dense one-hot
    layers), before and after the weights change (an update, then a load)."""
    cfg = make_config("debug", {"precision": "bf16"})
    space = {"image": ((64, 64, 3), np.uint8), "vector": ((4,), np.float32)}
    agent = Agent(cfg, space, gymnasium.spaces.Discrete(3))
    agent.wm.rssm.gather_onehot = False
    rng = np.random.default_rng(0)
    obs = {"image": rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8), "vector": rng.normal(size=(2, 4)).astype(np.float32),
           "is_first": np.array([True, False])}

    def step(cast: bool):
        agent.cast_acting_weights = cast
        data = agent.wm.preprocess({k: v[:, None] for k, v in obs.items()}, agent.device)
        torch.manual_seed(1)
        with torch.no_grad(), agent.autocast():
            args = (data, agent.initial_state(2)[0], torch.zeros(2, 3), True, True)
            latent, dist = torch.func.functional_call(agent, agent._acting_weights(), args) if cast else agent(*args)
        return latent["deter"], dist.logits

    def same():
        (deter, logits), (plain_deter, plain_logits) = step(True), step(False)
        assert torch.equal(deter, plain_deter) and torch.equal(logits, plain_logits)
        return logits

    before = same()
    cached = agent._acting_weights()
    assert cached and all(t.dtype == torch.bfloat16 for t in cached.values())
    agent.update(_image_vector_batch(rng, 2, 8))
    after = same()
    assert not torch.equal(before, after)  # the update reached the casts
    other = Agent(cfg, space, gymnasium.spaces.Discrete(3))
    agent.load_state_dict(other.state_dict())
    assert not torch.equal(after, same())


def test_compiled_policy_step_matches_the_eager_step_after_every_weight_change():
    """compile_policy: the compiled acting step computes the eager one's posterior and action (to
    float rounding), on a reset step and on the others, and after an update has changed the
    weights and the one-hot tables that it reads from outside its graph. Deterministic steps
    (the posterior's mode, the action's mode) so that the two can be compared."""
    overrides = {"train.eval_state_mean": True}
    space = {"image": ((64, 64, 3), np.uint8), "vector": ((4,), np.float32)}
    torch.manual_seed(0)
    compiled = Agent(make_config("debug", {**overrides, "compile_policy": True}), space, gymnasium.spaces.Discrete(3))
    eager = Agent(make_config("debug", overrides), space, gymnasium.spaces.Discrete(3))
    eager.load_state_dict(compiled.state_dict())
    rng = np.random.default_rng(0)
    frames = [{"image": rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8),
               "vector": rng.normal(size=(2, 4)).astype(np.float32), "is_first": np.array([i == 0] * 2)}
              for i in range(4)]

    def run() -> list[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        states, steps = {compiled: None, eager: None}, []
        for obs in frames:
            for agent in states:
                action, states[agent] = agent.policy(obs, states[agent], "eval")
                steps.append((action, states[agent][0]["deter"], states[agent][0]["logits"]))
            (action, deter, logits), (plain_action, plain_deter, plain_logits) = steps[-2:]
            np.testing.assert_allclose(action, plain_action, atol=1e-6)  # (1 + p) - p, rounded either way
            torch.testing.assert_close(deter, plain_deter, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(logits, plain_logits, rtol=1e-4, atol=1e-5)
        return steps

    before = run()
    batch = _image_vector_batch(rng, 4, 10)
    for agent in (compiled, eager):
        torch.manual_seed(1)
        agent.update(batch)
    after = run()
    assert not torch.equal(before[-2][2], after[-2][2])  # the update reached the compiled step


def test_compile_policy_without_a_cxx_compiler_is_a_clear_error(monkeypatch):
    import shutil
    from dreamer2.config import ConfigError
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="compile_policy needs a C.. compiler"):
        Agent(make_config("debug", {"compile_policy": True}), {"vector": ((4,), np.float32)}, gymnasium.spaces.Discrete(2))


def test_keep_freed_memory_reuses_freed_blocks_without_page_faults():
    """After keep_freed_memory() freed 64 MB blocks are reused: once the heap has settled,
    allocating and touching a block again faults in no pages, where glibc's default maps and
    zeroes it anew each time; and the heap stays bounded. It settles only after a few cycles:
    a freed block next to a later small allocation cannot take a posix_memalign request of the
    same size (which asks for the alignment on top), so the heap grows by a few blocks (measured
    here: 1-6 of 64 MB, within 15 cycles) before every request finds a free one."""
    import subprocess
    import sys
    code = """
import resource, torch
from dreamer2.training import keep_freed_memory
def faults_of_a_fresh_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(64 << 20, dtype=torch.uint8)
    block.fill_(1)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
def settled_faults():
    [faults_of_a_fresh_block() for _ in range(15)]
    return sum(faults_of_a_fresh_block() for _ in range(5))
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
default = settled_faults()
assert keep_freed_memory()
start = resident_mb()
print(default, settled_faults(), resident_mb() - start)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    default, kept, grown_mb = map(int, out.split())
    assert default > 5 * 10_000 and kept < 500, (default, kept)  # 5 blocks of 16,384 pages of 4 KB
    assert grown_mb < 10 * 64, grown_mb  # the heap keeps a few blocks, not one for each of the 20 cycles


def test_exploration_noise_matches_the_reference_for_both_action_kinds():
    """``train.expl_noise`` (the reference's ``action_noise``): continuous actions get N(0, amount^2)
    added and clipped to [-1, 1]; a discrete action is swapped for a uniform random one with
    probability ``amount``, so it changes with probability amount * (1 - 1/n)."""
    torch.manual_seed(0)
    space = {"vector": ((4,), np.float32)}
    cont = Agent(make_config("debug"), space, gymnasium.spaces.Box(-1, 1, (2,), np.float32))
    zeros = torch.zeros(50_000, 2)
    assert cont._noise(zeros, 0.0) is zeros
    noisy = cont._noise(zeros, 0.3)
    assert noisy.mean().item() == pytest.approx(0.0, abs=0.005) and noisy.std().item() == pytest.approx(0.3, abs=0.005)
    at_bound = cont._noise(torch.ones(50_000, 2), 0.3)
    assert at_bound.max().item() == 1.0 and (at_bound == 1.0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    disc = Agent(make_config("debug"), space, gymnasium.spaces.Discrete(4))
    first = torch.nn.functional.one_hot(torch.zeros(50_000, dtype=torch.long), 4).float()
    swapped = disc._noise(first, 0.3)
    assert (swapped.sum(-1) == 1).all() and set(swapped.unique().tolist()) == {0.0, 1.0}
    assert (swapped.argmax(-1) != 0).float().mean().item() == pytest.approx(0.3 * 3 / 4, abs=0.01)


@pytest.mark.parametrize("discrete", [True, False])
def test_the_update_and_the_policy_step_never_read_a_value_back_to_the_host(discrete):
    """On a GPU, reading a tensor's value back (``.item()``, ``bool(t)``, ``F.one_hot``'s range
    check) waits for every kernel queued so far; inside the observe loop and imagination that
    stalled the device at every step. The dispatcher sees such a read as ``_local_scalar_dense``
    on a CPU too, so it is counted here: none in the world model's step, imagination and its
    losses (with the return normalisation on), or a policy step."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountReads(TorchDispatchMode):
        reads = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.reads += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    space = {"image": ((64, 64, 3), np.uint8), "vector": ((4,), np.float32)}
    act_space = gymnasium.spaces.Discrete(3) if discrete else gymnasium.spaces.Box(-1, 1, (3,), np.float32)
    agent = Agent(make_config("debug", {"actor.return_norm": True, "train.expl_noise": 0.3}), space, act_space)
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8),
             "vector": rng.normal(size=(2, 8, 4)).astype(np.float32),
             "action": np.eye(3, dtype=np.float32)[rng.integers(3, size=(2, 8))],
             "reward": rng.normal(size=(2, 8)).astype(np.float32), "is_first": np.eye(8, dtype=bool)[[0, 0]],
             "is_last": np.zeros((2, 8), bool), "is_terminal": np.eye(8, dtype=bool)[[7, 3]]}
    obs = {"image": batch["image"][:, 0], "vector": batch["vector"][:, 0], "is_first": np.array([True, False])}
    for _ in range(2):  # the second round after an update, with the slow critic and the return scale set
        with CountReads() as mode:
            post, data, _ = agent.update_world_model(batch)
            actor_loss, critic_loss, _ = agent.behavior_losses(post, data["is_terminal"])
            action, state = agent.policy(obs, None, "train")
            agent.policy({**obs, "is_first": np.array([False, False])}, state, "eval")  # no reset: gathers
        assert mode.reads == 0
        assert actor_loss.isfinite() and critic_loss.isfinite() and action.shape == (2, 3)
        agent.update(batch)
