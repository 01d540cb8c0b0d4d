"""Agent = world model + actor-critic, their optimizers, and the policy used in the env."""
from __future__ import annotations

import contextlib
import functools
import shutil
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .behavior import ActorCritic
from .config import ConfigError
from .diagnostics import grad_norms
from .distributions import one_hot
from .nets import init_like_reference, onehot_table
from .world_model import NON_OBS_KEYS, State, WorldModel

PolicyState = tuple[State, torch.Tensor]


class Clock:
    """Wall time of the phases of an update, in seconds (``time/PHASE``). On a GPU it waits for the
    queued kernels at each lap, which costs a little but is the only honest split."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.laps[f"time/{name}"], self.last = now - self.last, now


class Optimizer:
    """Adam with the reference's extras: global-norm clipping and decoupled weight decay
    (``w *= 1 - wd`` before each step, i.e. AdamW with ``weight_decay = wd / lr``)."""

    def __init__(self, name: str, module: nn.Module, cfg, parts: tuple[str, ...] = (), fp16: bool = False,
                 device: str = "cpu"):
        """``parts``: names of submodules of ``module`` whose gradient norms are logged apart.
        ``fp16``: scale the loss so that fp16 gradients do not underflow; a step whose gradients
        overflow is skipped and the scale halved (counted in ``precision/NAME_skipped``)."""
        self.name, self.params, self.clip = name, list(module.parameters()), cfg.clip
        self.parts = {part: getattr(module, part) for part in parts}
        # fused: one vectorized pass over each tensor instead of a dozen elementwise ops (the same
        # update): the world model's step 38.8 -> 11.8 ms at the atari size (20M weights, Zen 2).
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.wd / cfg.lr, fused=True)
        # Adam's steps have about the rate's size whatever the gradient's: a warmup keeps the first
        # ones, taken while the losses (and, for the actor, the world model) are least trained, small.
        warmup = max(cfg.warmup, 1)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: min(1.0, (step + 1) / warmup))
        self.scaler = torch.amp.GradScaler(device, enabled=fp16)
        self.skipped = 0

    def step(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        metrics = {f"grad_norm/{part}": norm for part, norm in grad_norms(self.parts).items()}
        norm = nn.utils.clip_grad_norm_(self.params, self.clip) if self.clip else torch.zeros(())
        stepped = True
        if self.scaler.is_enabled():
            scale = self.scaler.get_scale()
            self.scaler.step(self.opt)  # skipped when the gradients hold inf or NaN
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale
            self.skipped += int(not stepped)
            metrics.update({f"precision/{self.name}_loss_scale": torch.tensor(scale),
                            f"precision/{self.name}_skipped": torch.tensor(float(self.skipped))})
        else:
            self.opt.step()
        # The fused kernel writes the weights without bumping their version counters, on which
        # the caches of acting (nets.onehot_table, Agent._acting_weights) see a change.
        torch.autograd.graph.increment_version(self.params)
        lr = self.opt.param_groups[0]["lr"]  # the rate this step took
        if stepped:  # a skipped step does not count towards the warmup
            self.schedule.step()
        return {f"{self.name}/loss": loss.detach(), f"{self.name}/grad_norm": norm, f"{self.name}/lr": torch.tensor(lr),
                **metrics}

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict(), "scaler": self.scaler.state_dict(), "skipped": self.skipped,
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "opt" not in state:  # checkpoints written before the gradient scaler held Adam's state alone
            state = {"opt": state, "scaler": self.scaler.state_dict(), "skipped": 0}
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.skipped = state["skipped"]
        if "schedule" in state:  # checkpoints written before the warmup option start at the full rate
            self.schedule.load_state_dict(state["schedule"])


@functools.cache
def cpu_bf16_matmul_speedup(size: int = 512, reps: int = 7) -> float:
    """How many times as fast a bf16 matrix product runs as an fp32 one on this CPU: the fastest
    of ``reps`` size^3 products each (~40 ms at 512), measured once per process.

    The CPU's flags do not tell. Without AVX512-BF16 or AMX bf16 is emulated (an update of the
    small preset took 5.5x fp32's time on an AVX2 CPU). With AVX512-BF16 it paid on an AMD Zen 4
    (an atari update in 0.55x fp32's time) but not on an Intel Xeon whose AMX was not exposed
    (family 6 model 207: 512^3 products at 0.57-0.62x fp32's speed, an atari update in 1.46x
    its time)."""
    pairs = [(torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype))
             for dtype in (torch.float32, torch.bfloat16)]
    for a, b in pairs:
        a @ b  # first calls: oneDNN/MKL pick and build their kernels
    times: list[list[float]] = [[], []]
    for _ in range(reps):  # interleaved, so that the machine's noise hits both alike
        for (a, b), taken in zip(pairs, times):
            start = time.perf_counter()
            a @ b
            taken.append(time.perf_counter() - start)
    return min(times[0]) / min(times[1])  # the fastest of each: noise only ever adds time


def compiled_acting_step(step, device: torch.device):
    """``torch.compile`` of the acting step (``compile_policy``), one graph per kind of call.

    A one-env step in eager PyTorch runs ~150 operators at a few microseconds each; compiled,
    the elementwise ones fuse, and on a CPU a C++ wrapper (``cpp_wrapper``; where it was
    measured) calls the kernels without Python. The guards on module attributes are skipped
    (checked at each call, they took ~0.15 ms): nothing changes a module's attributes after the
    first step, and the weights and one-hot tables that change are read as inputs. Each kind of call (sampling or not, a reset in the
    batch or not, a batch size) compiles on first use, ~10-20 s each on a CPU.
    """
    if device.type == "cpu" and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise ConfigError("compile_policy needs a C++ compiler on a CPU (none of g++, c++, clang++ is on PATH): "
                          "install one (apt-get install g++) or set compile_policy false")
    return torch.compile(step, dynamic=False, options={
        "cpp_wrapper": device.type == "cpu", "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe})


def space_dims(act_space) -> tuple[int, bool]:
    """(action vector size, discrete?) of a gymnasium action space after the adapter."""
    discrete = hasattr(act_space, "n")
    return (int(act_space.n) if discrete else int(np.prod(act_space.shape))), discrete


class Agent(nn.Module):
    """The DreamerV2 agent.

    ``update(batch)`` does one training step of the world model and the actor-critic;
    ``policy(obs, state, mode)`` acts on a batch of env observations; ``act(obs, state)``
    is the one-env convenience used through the public API.
    """

    def __init__(self, cfg, obs_space: dict[str, tuple[tuple[int, ...], Any]], act_space, device: str = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.obs_space = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in obs_space.items()}
        self.act_space = act_space
        self.action_dim, self.discrete = space_dims(act_space)
        self.wm = WorldModel(self.obs_space, self.action_dim, cfg)
        self.ac = ActorCritic(self.wm.rssm.feat_dim, self.action_dim, self.discrete, cfg)
        init_like_reference(self)
        with torch.no_grad():
            self.ac.actor.net.out.weight.mul_(cfg.actor.out_scale)
        self.ac.slow_critic.load_state_dict(self.ac.critic.state_dict())
        self.to(device)
        self.device = torch.device(device)
        self.amp_dtype = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[str(cfg.precision)]
        if self.device.type == "cpu" and self.amp_dtype == torch.bfloat16 and (speedup := cpu_bf16_matmul_speedup()) < 1:
            warnings.warn(f"precision bf16 is slower than fp32 on this CPU ({torch.backends.cpu.get_cpu_capability()}): "
                          f"a bf16 matrix product ran at {speedup:.2f}x the speed of an fp32 one (an atari update took "
                          "1.46x fp32's time on an Intel Xeon with AVX512-BF16 but no AMX, an update of the small "
                          "preset 5.5x on an AVX2 CPU). Use precision 32 here.", stacklevel=2)
        self.cast_acting_weights = True  # acting under autocast reads cached casts (_acting_weights)
        self._acting_cast: tuple[tuple, tuple, dict[str, torch.Tensor]] | None = None
        self._act = compiled_acting_step(self._act_step, self.device) if cfg.compile_policy else self._act_step
        # The layers whose one-hot tables the compiled step reads (refreshed by ``policy``, outside it).
        gathering = cfg.compile_policy and cfg.rssm.discrete
        self._compiled_tables = (self.wm.rssm.img_in[0], self.ac.actor.net.first) if gathering else ()
        fp16 = self.amp_dtype == torch.float16
        kind = self.device.type
        self.model_opt = Optimizer("world_model", self.wm, cfg.model_opt, self.wm.parts(), fp16, kind)
        self.actor_opt = Optimizer("actor", self.ac.actor, cfg.actor_opt, fp16=fp16, device=kind)
        self.critic_opt = Optimizer("critic", self.ac.critic, cfg.critic_opt, fp16=fp16, device=kind)

    def autocast(self) -> torch.autocast | contextlib.nullcontext:
        """Mixed precision for the forward passes (``precision``); weights and optimizers stay fp32.
        In fp32, no context at all: making and entering a disabled autocast cost tens of µs a policy step."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- training -----------------------------------------------------------------------------
    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step on every part from a replay batch of [B, T, ...] arrays."""
        clock = Clock(self.device)
        post, data, metrics = self.update_world_model(batch)
        clock.lap("world_model")
        actor_loss, critic_loss, ac_metrics = self.behavior_losses(post, data["is_terminal"])
        clock.lap("imagination")
        metrics.update(ac_metrics)
        metrics.update(self.actor_opt.step(actor_loss))
        clock.lap("actor")
        metrics.update(self.critic_opt.step(critic_loss))
        self.ac.update_slow_critic()
        clock.lap("critic")
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics.update(clock.laps)
        return metrics

    def update_world_model(self, batch: dict[str, np.ndarray]
                           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The world model's gradient step alone: returns the posterior states [B, T, ...] that
        imagination starts from, the preprocessed batch, and the model's metrics."""
        self.wm.update_obs_stats(batch)
        data = self.wm.preprocess(batch, self.device)
        with self.autocast():
            wm_loss, post, metrics = self.wm.loss(data)
        metrics.update(self.model_opt.step(wm_loss))
        return post, data, metrics

    def behavior_losses(self, post: dict[str, torch.Tensor], is_terminal: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Actor and critic losses imagined from every posterior state [B, T, ...] of a batch."""
        start = {k: v.detach().flatten(0, 1) for k, v in post.items()}  # [B*T, ...]
        self.wm.requires_grad_(False)  # the actor's gradient may pass through, never into, the model
        try:
            with self.autocast():
                return self.ac.losses(self.wm, start, is_terminal.flatten(0, 1))
        finally:
            self.wm.requires_grad_(True)

    @torch.no_grad()
    def openl_video(self, batch: dict[str, np.ndarray], context: int = 5) -> np.ndarray:
        """Open-loop prediction video of replayed sequences (see ``WorldModel.openl``)."""
        return self.wm.openl(self.wm.preprocess(batch, self.device), context)

    @torch.no_grad()
    def dream_video(self, batch: dict[str, np.ndarray], context: int = 5) -> np.ndarray:
        """Imagination made visible: observe ``context`` replayed frames, then let the world model
        dream the rest with the actor choosing (sampling) every action, no env involved.

        Returns uint8 [T, 2H, B*W, C]: the replayed episode on top (black once the replayed
        sequence crosses into another episode, where no real continuation exists) and the dream
        below, one column per sequence.
        """
        wm = self.wm
        if not wm.dec_cnn:
            raise ConfigError("dreams are decoded to video, which needs image observations and an image decoder")
        key = wm.dec_cnn[0]
        data = wm.preprocess(batch, self.device)
        with self.autocast():
            post, _ = wm.rssm.observe(wm.encode(data)[:, :context], data["action"][:, :context],
                                      data["is_first"][:, :context])
            frames = [wm.decode(wm.rssm.feat(post))[key].mode()]  # [B, context, C, H, W]
            state = {k: v[:, -1] for k, v in post.items()}
            feats = []
            for _ in range(context, data["action"].shape[1]):
                state = wm.rssm.img_step(state, self.ac.actor(wm.rssm.feat(state)).sample())
                feats.append(wm.rssm.feat(state))
            frames.append(wm.decode(torch.stack(feats, 1))[key].mode())
        dream = torch.cat(frames, 1).float() + 0.5
        new_episode = data["is_first"].clone()
        new_episode[:, 0] = False
        same = (torch.cumsum(new_episode.float(), 1) == 0).float()[..., None, None, None]  # [B, T, 1, 1, 1]
        real = (data[key] + 0.5) * same
        video = torch.cat([real, dream], -2).clamp(0, 1)  # [B, T, C, 2H, W]
        b, t, c, h, w = video.shape
        video = video.permute(1, 3, 0, 4, 2).reshape(t, h, b * w, c)
        return (video * 255).round().to(torch.uint8).cpu().numpy()

    # -- acting -------------------------------------------------------------------------------
    def initial_state(self, batch: int) -> PolicyState:
        return self.wm.rssm.initial(batch, self.device), torch.zeros(batch, self.action_dim, device=self.device)

    def forward(self, data: dict[str, torch.Tensor], latent: State, action: torch.Tensor, sample: bool,
                resets: bool) -> tuple[State, Any]:
        """One acting step on preprocessed ``data`` [N, 1, ...]: the posterior and the actor's
        distribution from it (``policy`` is the numpy-facing wrapper)."""
        embed = self.wm.encode(data)[:, 0]  # [N, E]
        latent, _ = self.wm.rssm.obs_step(latent, action, embed, data["is_first"][:, 0], sample=sample,
                                          with_prior=False, resets=resets)
        # The one-hot latents as the columns they set: the actor's first layer gathers 32 rows
        # of its cached weight table instead of reading all 1,024 (nets.onehot_table).
        return latent, self.ac.actor(self.wm.rssm.feat(latent, gather=True))

    def _acting_weights(self) -> dict[str, torch.Tensor]:
        """The acting step's linear and conv weights in the autocast dtype: the values autocast
        would cast on every call, cast once per weight change instead (an update or a load bumps a
        tensor's ``_version``). A one-env step otherwise reads ~25 MB of fp32 weights and writes
        their casts; at the atari preset the cached casts take the bf16 step from ~2.4 to ~1.4 ms.
        Refreshed in place, so that caches keyed on a tensor's version (nets.onehot_table) follow."""
        params = {f"{name}.{key}": param for name, module in self.named_modules()
                  if name.split(".")[:2] in (["wm", "cnn_encoder"], ["wm", "mlp_encoder"], ["wm", "rssm"], ["ac", "actor"])
                  and isinstance(module, (nn.Linear, nn.Conv2d))
                  for key, param in module.named_parameters(recurse=False)}
        ptrs = tuple(p.data_ptr() for p in params.values())
        versions = tuple(p._version for p in params.values())
        cached = self._acting_cast
        if cached is None or cached[0] != ptrs or cached[2].keys() != params.keys():
            self._acting_cast = (ptrs, versions, {k: p.detach().to(self.amp_dtype) for k, p in params.items()})
        elif cached[1] != versions:
            with torch.no_grad():
                for key, param in params.items():
                    cached[2][key].copy_(param)
            self._acting_cast = (ptrs, versions, cached[2])
        return self._acting_cast[2]

    @torch.no_grad()
    def policy(self, obs: dict[str, np.ndarray], state: PolicyState | None, mode: str = "train"
               ) -> tuple[np.ndarray, PolicyState]:
        """obs: batched contract dict [N, ...]. mode: 'train' samples, 'eval' takes the mode.

        Returns actions [N, A] (one-hot or in [-1, 1]) and the recurrent state to pass back.
        """
        n = len(obs["is_first"])
        if state is None:
            state = self.initial_state(n)
        batch = {k: torch.as_tensor(v[:, None], device=self.device)
                 for k, v in obs.items() if k in self.obs_space or k in NON_OBS_KEYS}
        sample = mode == "train" or not self.cfg.train.eval_state_mean
        for layer in self._compiled_tables:
            onehot_table(layer, self.wm.rssm.stoch_dim)
        with self.autocast():
            latent, action = self._act(batch, *state, sample, bool(np.any(obs["is_first"])), mode)
        return action.cpu().numpy(), (latent, action)

    def _act_step(self, batch: dict[str, torch.Tensor], latent: State, action: torch.Tensor, sample: bool,
                  resets: bool, mode: str) -> PolicyState:
        """``policy``'s work on tensors: preprocess, the posterior, the actor, its action (with
        exploration noise); what ``compile_policy`` compiles."""
        args = (self.wm.preprocess(batch, self.device), latent, action, sample, resets)
        if self.amp_dtype is not None and self.cast_acting_weights:
            latent, dist = torch.func.functional_call(self, self._acting_weights(), args)
        else:
            latent, dist = self(*args)
        action = dist.sample() if mode == "train" else dist.mode()
        noise = self.cfg.train.expl_noise if mode == "train" else self.cfg.train.eval_noise
        return latent, self._noise(action, noise)

    def _noise(self, action: torch.Tensor, amount: float) -> torch.Tensor:
        if amount == 0:
            return action
        if self.discrete:
            random = one_hot(torch.randint(0, self.action_dim, action.shape[:-1], device=action.device),
                             self.action_dim, action.dtype)
            pick = (torch.rand(action.shape[:-1], device=action.device) < amount)[..., None]
            return torch.where(pick, random, action)
        return (action + amount * torch.randn_like(action)).clamp(-1, 1)

    def act(self, obs: dict[str, Any], state: PolicyState | None = None, explore: bool = False
            ) -> tuple[Any, PolicyState]:
        """Act in one env: ``obs`` is the contract dict an adapter returns (one step, unbatched).

        Returns the action in the wrapped env's format (one-hot / [-1, 1] vector) and the state.
        """
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        if "is_first" not in batch:
            batch["is_first"] = np.array([state is None])
        action, state = self.policy(batch, state, "train" if explore else "eval")
        return action[0], state
