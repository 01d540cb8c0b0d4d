"""The world model: encoder, RSSM with discrete latents, decoders, reward and discount heads.

``WorldModel.loss`` returns the paper's objective: image/vector reconstruction, reward and
discount likelihoods, and the KL-balanced latent loss, plus the posterior states that the
actor-critic imagines from.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import torch
from torch import nn

from .diagnostics import code_usage, terminal_precision_recall
from .distributions import BernoulliDist, MSEDist, OneHotDist, categorical_kl, gaussian_kl
from .nets import (ConvDecoder, ConvEncoder, LayerNormGRUCell, Linear, MLPHead, OneHotFeat, SequenceWeights, dense,
                   linear, mlp)

State = dict[str, torch.Tensor]
NON_OBS_KEYS = ("reward", "is_first", "is_last", "is_terminal", "action", "discount")
LOG_PREFIX = "log_"  # observation keys an adapter provides for logging (e.g. Crafter's achievements)


def detach(state: State) -> State:
    return {k: v.detach() for k, v in state.items()}


def _cat(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    """``torch.cat``, which copies even a single tensor (one image key, or images alone: a copy of
    the batch's frames per update and two per env step); a single one is returned as it is."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim)


def kl_balance(kl: Callable[[State, State], torch.Tensor], post: State, prior: State,
               balance: float, free: float, free_avg: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KL balancing: ``(1 - balance) * KL(post || sg(prior)) + balance * KL(sg(post) || prior)``.

    The first term trains the posterior towards the prior, the second (weighted 0.8 in the
    paper) trains the prior towards the posterior, so the prior learns faster than the
    posterior is regularized. Free nats clip each term from below, after averaging over the
    batch when ``free_avg`` (the reference) or per element otherwise.

    Returns the loss and, detached, its parts: ``kl`` (the raw KL per element), ``post_term`` and
    ``prior_term`` (the two weighted, clipped terms; they sum to the loss) and ``free_fraction``
    (the share of elements whose KL is below the free nats, where they stop its gradient).
    """
    lhs = kl(post, detach(prior))  # gradient reaches the posterior only
    rhs = kl(detach(post), prior)  # gradient reaches the prior only
    free_t = torch.tensor(free, dtype=lhs.dtype, device=lhs.device)
    if free_avg:
        post_term = (1 - balance) * torch.maximum(lhs.mean(), free_t)
        prior_term = balance * torch.maximum(rhs.mean(), free_t)
    else:
        post_term = ((1 - balance) * torch.maximum(lhs, free_t)).mean()
        prior_term = (balance * torch.maximum(rhs, free_t)).mean()
    parts = {"kl": lhs.detach(), "post_term": post_term.detach(), "prior_term": prior_term.detach(),
             "free_fraction": (lhs.detach() < free).float().mean()}
    return post_term + prior_term, parts


class RSSM(nn.Module):
    """Recurrent state-space model: deterministic GRU path ``deter`` and stochastic ``stoch``.

    Discrete latents (``discrete > 0``) are ``stoch`` categoricals of ``discrete`` classes,
    sampled with straight-through gradients; ``discrete == 0`` gives diagonal Gaussians.
    """

    def __init__(self, action_dim: int, embed_dim: int, deter: int, hidden: int, stoch: int,
                 discrete: int, norm: bool = False, min_std: float = 0.1):
        super().__init__()
        self.deter, self.stoch, self.discrete, self.min_std = deter, stoch, discrete, min_std
        stoch_dim = stoch * discrete if discrete else stoch
        stats_dim = stoch * discrete if discrete else 2 * stoch
        self.stoch_dim = stoch_dim
        self.img_in = mlp(stoch_dim + action_dim, 1, hidden, norm)
        self.gru = LayerNormGRUCell(hidden, deter, norm=True)
        self.img_out = MLPHead(deter, stats_dim, 1, hidden)
        self.obs_out = MLPHead(deter + embed_dim, stats_dim, 1, hidden)
        # Linear layers over sampled one-hot latents that need no gradient gather the weight columns
        # the one-hots select (``OneHotFeat``); off computes the plain dense product (same sums).
        self.gather_onehot = True

    @property
    def feat_dim(self) -> int:
        return self.stoch_dim + self.deter

    def initial(self, batch: int, device: torch.device | str) -> State:
        state = {"deter": torch.zeros(batch, self.deter, device=device)}
        if self.discrete:
            state["logits"] = torch.zeros(batch, self.stoch, self.discrete, device=device)
            state["stoch"] = torch.zeros(batch, self.stoch, self.discrete, device=device)
        else:
            state["mean"] = torch.zeros(batch, self.stoch, device=device)
            state["std"] = torch.zeros(batch, self.stoch, device=device)
            state["stoch"] = torch.zeros(batch, self.stoch, device=device)
        return state

    def gatherable(self, state: State) -> bool:
        """A sampled one-hot state: it has the ``columns`` its one-hots set."""
        return self.gather_onehot and "columns" in state

    def _after_stoch(self, state: State, tail: torch.Tensor, gather: bool) -> torch.Tensor | OneHotFeat:
        """``[stoch, tail]``; with ``gather``, a ``OneHotFeat`` where the state allows (with its
        straight-through one-hots where they carry gradient)."""
        if gather and self.gatherable(state):
            grad = torch.is_grad_enabled() and state["stoch"].requires_grad
            return OneHotFeat(state["columns"], tail, self.stoch_dim, state["stoch"].flatten(-2) if grad else None)
        stoch = state["stoch"].flatten(-2) if self.discrete else state["stoch"]  # [..., stoch_dim]
        return torch.cat([stoch, tail], -1)

    def feat(self, state: State, gather: bool = False) -> torch.Tensor | OneHotFeat:
        """``[stoch, deter]`` [..., feat_dim]; with ``gather``, a ``OneHotFeat`` where the state allows."""
        return self._after_stoch(state, state["deter"], gather)

    def _stats(self, x: torch.Tensor) -> State:
        if self.discrete:
            return {"logits": x.reshape(*x.shape[:-1], self.stoch, self.discrete)}  # [N, stoch, classes]
        mean, std = x.chunk(2, -1)
        return {"mean": mean, "std": 2 * torch.sigmoid(std / 2) + self.min_std}

    def _sample(self, stats: State, sample: bool, columns_only: bool = False) -> State:
        """``stoch``, and for one-hot latents the ``columns`` [N, stoch] their ones stand in
        (with ``columns_only``, those alone: see ``img_step``)."""
        if self.discrete:
            dist = OneHotDist(stats["logits"])
            index = dist.sample_index() if sample else stats["logits"].argmax(-1)  # [N, stoch]
            columns = index + torch.arange(self.stoch, device=index.device) * self.discrete
            return {"columns": columns} if columns_only else {"stoch": dist.straight_through(index), "columns": columns}
        if not sample:
            return {"stoch": stats["mean"]}
        return {"stoch": stats["mean"] + stats["std"] * torch.randn_like(stats["std"])}

    def recur(self, state: State, action: torch.Tensor) -> torch.Tensor:
        """The deterministic step: ``[stoch, action] -> Dense -> ELU -> GRU -> deter`` [N, deter]."""
        x = self.img_in[1:](linear(self.img_in[0], self._after_stoch(state, action, gather=True)))  # [N, hidden]
        return self.gru(x, state["deter"])

    def prior_stats(self, deter: torch.Tensor) -> State:
        """The prior's stats from ``deter`` [..., deter] alone (its head reads nothing else)."""
        return self._stats(self.img_out(deter))

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True, columns_only: bool = False) -> State:
        """Prior step: ``recur`` and the prior's stats and sample from ``deter``.

        ``columns_only`` leaves out the one-hot ``stoch`` (one-hot latents only), for a caller
        whose layers gather the sample's ``columns`` and pass no gradient to the one-hots:
        imagination with REINFORCE gradients, where building the one-hots and their
        straight-through sum was ~1.3 ms of each of the 15 steps at atari for values nothing read.
        """
        deter = self.recur(state, action)  # [N, deter]
        stats = self.prior_stats(deter)
        return {"deter": deter, **self._sample(stats, sample, columns_only), **stats}

    def embed_part(self, embed: torch.Tensor) -> torch.Tensor:
        """The embedding's share ``W_e embed + b`` of the posterior's first Dense over
        ``[deter, embed]``. It does not depend on the recurrence, so ``observe`` computes it for
        all frames in one GEMM outside the time loop; the sum below is the same Dense."""
        first = self.obs_out.trunk[0]
        return dense(embed, first.weight[:, self.deter:], first.bias)

    def deter_columns(self) -> torch.Tensor:
        """The posterior's first Dense's weight columns that read ``deter`` [hidden, deter]."""
        return self.obs_out.trunk[0].weight[:, :self.deter]

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor,
                 sample: bool = True, embed_part: torch.Tensor | None = None, with_prior: bool = True,
                 resets: bool = True, deter_weight: torch.Tensor | None = None) -> tuple[State, State | None]:
        """Posterior step. ``is_first`` zeroes the previous state and action (episode reset).

        Acting needs no prior: ``with_prior=False`` skips its head and sample (a quarter of the
        RSSM's weights, read for nothing at every env step) and returns None in its place.
        ``resets=False`` says that no ``is_first`` is set (the caller knows it without a device
        sync), so the state's one-hot ``columns`` stay valid and the input layer can gather them.
        ``deter_weight`` is ``deter_columns()``, sliced once per sequence by ``observe`` (through
        ``SequenceWeights``), so that the steps' gradients are summed at [hidden, deter] and
        scattered into the whole weight once, not once per step.
        """
        if resets:
            keep = 1.0 - is_first.to(action.dtype)  # [N]
            # A reset state is zeros, not one-hot: its columns no longer say what it holds.
            state = {k: v * keep.reshape(-1, *([1] * (v.dim() - 1))) for k, v in state.items() if k != "columns"}
            action = action * keep[:, None]
        if with_prior:
            prior = self.img_step(state, action, sample)
            deter = prior["deter"]
        else:
            prior, deter = None, self.recur(state, action)
        if embed_part is None:
            embed_part = self.embed_part(embed)
        x = dense(deter, self.deter_columns() if deter_weight is None else deter_weight) + embed_part
        stats = self._stats(self.obs_out.out(self.obs_out.trunk[1:](x)).float())
        post = {"deter": deter, **self._sample(stats, sample), **stats}
        return post, prior

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None) -> tuple[State, State]:
        """Filter a sequence: embed [B, T, E], action [B, T, A], is_first [B, T] -> states [B, T, ...]."""
        if state is None:
            state = self.initial(embed.shape[0], embed.device)
        posts = []
        # Unbound once, not indexed per step: the backward then stacks the T steps' gradients once,
        # where T selects would each scatter theirs into a zeroed [B, T, hidden] and add it up.
        parts = self.embed_part(embed).unbind(1)  # T x [B, hidden]
        with SequenceWeights([self.img_in[0], self.gru.linear, self.obs_out.out]) as seq:
            deter_weight = seq.weight(self.deter_columns())
            for t in range(embed.shape[1]):
                state, _ = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t], embed_part=parts[t],
                                         with_prior=False, deter_weight=deter_weight)
                posts.append(state)
        post = {k: torch.stack([s[k] for s in posts], 1) for k in posts[0]}  # [B, T, ...]
        # The prior's head reads only ``deter`` and nothing in the recurrence reads the prior, so it
        # runs once over all B*T frames (one GEMM) instead of T times over B rows inside the loop;
        # the loss needs only its stats, so its sample is not drawn.
        prior = {"deter": post["deter"], **self.prior_stats(post["deter"])}
        return post, prior

    def kl(self, p: State, q: State) -> torch.Tensor:
        if self.discrete:
            return categorical_kl(p["logits"], q["logits"])
        return gaussian_kl(p["mean"], p["std"], q["mean"], q["std"])

    def entropy(self, state: State) -> torch.Tensor:
        if self.discrete:
            return OneHotDist(state["logits"]).entropy().sum(-1)
        return (0.5 * np.log(2 * np.pi * np.e) + torch.log(state["std"])).sum(-1)


class WorldModel(nn.Module):
    """Encoder + RSSM + decoders + reward/discount heads, with the paper's loss."""

    def __init__(self, obs_space: dict[str, tuple[tuple[int, ...], np.dtype]], action_dim: int, cfg):
        super().__init__()
        self.cfg = cfg
        seen = {k: v for k, v in obs_space.items() if not k.startswith(LOG_PREFIX)}  # log_* keys: logging only
        image_keys = [k for k, (shape, dtype) in seen.items() if len(shape) == 3]
        vector_keys = [k for k, (shape, dtype) in seen.items() if len(shape) == 1]
        self.enc_cnn = [k for k in image_keys if re.fullmatch(cfg.encoder.cnn_keys, k)]
        self.enc_mlp = [k for k in vector_keys if re.fullmatch(cfg.encoder.mlp_keys, k)]
        self.dec_cnn = [k for k in image_keys if re.fullmatch(cfg.decoder.cnn_keys, k)]
        self.dec_mlp = [k for k in vector_keys if re.fullmatch(cfg.decoder.mlp_keys, k)]
        if not self.enc_cnn and not self.enc_mlp:
            raise ValueError(f"no observation key matches encoder.cnn_keys/mlp_keys; keys: {list(obs_space)}")
        self.shapes = {k: tuple(shape) for k, (shape, _) in obs_space.items()}
        # model.obs_norm: running statistics of the vector keys, concatenated (kept in checkpoints);
        # each key's slice of them.
        self.norm_slices, dims = {}, 0
        for key in sorted(set(self.enc_mlp) | set(self.dec_mlp)) if cfg.model.obs_norm else ():
            self.norm_slices[key] = slice(dims, dims + self.shapes[key][0])
            dims += self.shapes[key][0]
        if cfg.model.obs_norm:
            self.register_buffer("obs_count", torch.zeros((), dtype=torch.float64))
            self.register_buffer("obs_mean", torch.zeros(dims, dtype=torch.float64))
            self.register_buffer("obs_m2", torch.zeros(dims, dtype=torch.float64))
        embed = 0
        if self.enc_cnn:
            h, w = self.shapes[self.enc_cnn[0]][:2]
            channels = sum(self.shapes[k][2] for k in self.enc_cnn)
            e = cfg.encoder
            self.cnn_encoder = ConvEncoder(channels, e.cnn_depth, list(e.cnn_kernels), (h, w), e.norm)
            embed += self.cnn_encoder.out_dim
        if self.enc_mlp:
            e = cfg.encoder
            inp = sum(self.shapes[k][0] for k in self.enc_mlp)
            self.mlp_encoder = mlp(inp, e.mlp_layers, e.mlp_units, e.norm)
            embed += e.mlp_units if e.mlp_layers else inp
        r = cfg.rssm
        self.rssm = RSSM(action_dim, embed, r.deter, r.hidden, r.stoch, r.discrete, r.norm, r.min_std)
        feat = self.rssm.feat_dim
        d = cfg.decoder
        if self.dec_cnn:
            channels = sum(self.shapes[k][2] for k in self.dec_cnn)
            self.cnn_decoder = ConvDecoder(feat, channels, d.cnn_depth, list(d.cnn_kernels), d.norm)
        if self.dec_mlp:
            self.mlp_decoder = mlp(feat, d.mlp_layers, d.mlp_units, d.norm)
            self.mlp_out = nn.ModuleDict({
                k: Linear(d.mlp_units if d.mlp_layers else feat, self.shapes[k][0]) for k in self.dec_mlp})
        h = cfg.reward_head
        self.reward_head = MLPHead(feat, 1, h.layers, h.units, h.norm)
        if cfg.model.pred_discount:
            h = cfg.discount_head
            self.discount_head = MLPHead(feat, 1, h.layers, h.units, h.norm)

    # -- data ---------------------------------------------------------------------------------
    def update_obs_stats(self, batch: dict[str, np.ndarray]) -> None:
        """Fold a training batch's vector observations into the running mean and variance
        (``model.obs_norm``; Chan et al.'s pairwise update, so every batch counts equally per sample)."""
        if not self.norm_slices:
            return
        x = np.concatenate([np.asarray(batch[k], np.float64).reshape(-1, self.shapes[k][0]) for k in self.norm_slices], -1)
        x = torch.as_tensor(x, device=self.obs_mean.device)
        n, mean = float(len(x)), x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        total = self.obs_count + n
        delta = mean - self.obs_mean
        self.obs_m2 += m2 + delta ** 2 * self.obs_count * n / total
        self.obs_mean += delta * n / total
        self.obs_count.copy_(total)

    def obs_scale(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (float32) that standardize vector key ``key`` (``model.obs_norm``); 0 and 1
        before the first training batch, and a std floor of 1e-3 for dimensions that never vary."""
        part = self.norm_slices[key]
        seen = self.obs_count > 0
        var = torch.where(seen, self.obs_m2[part] / self.obs_count.clamp_min(1.0), torch.ones_like(self.obs_m2[part]))
        return self.obs_mean[part].float(), var.sqrt().clamp_min(1e-3).float()

    def preprocess(self, batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
        """numpy arrays or tensors [B, T, ...] -> tensors: images to [B, T, C, H, W] in [-0.5, 0.5], vectors
        standardized when ``model.obs_norm``, reward transformed as configured, discount target
        ``(1 - is_terminal) * discount``."""
        data = {}
        for key, value in batch.items():
            tensor = torch.as_tensor(value if isinstance(value, torch.Tensor) else np.asarray(value), device=device)
            if key in self.shapes and len(self.shapes[key]) == 3:
                tensor = tensor.permute(*range(tensor.dim() - 3), -1, -3, -2).float() / 255.0 - 0.5
            elif tensor.dtype != torch.float32 and key not in ("is_first", "is_last", "is_terminal"):
                tensor = tensor.float()
            if key in self.norm_slices:
                mean, std = self.obs_scale(key)
                tensor = (tensor - mean) / std
            data[key] = tensor
        data["is_first"] = data["is_first"].float()
        if "reward" in data:
            data["reward"] = data["reward"] * self.cfg.model.reward_scale
            if self.cfg.model.clip_rewards == "tanh":
                data["reward"] = torch.tanh(data["reward"])
        if "is_terminal" in data:
            data["discount"] = (1.0 - data["is_terminal"].float()) * self.cfg.behavior.discount
        return data

    def encode(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.enc_cnn:
            parts.append(self.cnn_encoder(_cat([data[k] for k in self.enc_cnn], -3)))  # [B, T, E_cnn]
        if self.enc_mlp:
            parts.append(self.mlp_encoder(_cat([data[k] for k in self.enc_mlp], -1)))  # [B, T, E_mlp]
        return _cat(parts, -1)  # [B, T, E]

    def decode(self, feat: torch.Tensor) -> dict[str, MSEDist]:
        """feat [..., F] -> one Normal(mean, 1) per decoded observation key."""
        dists = {}
        if self.dec_cnn:
            mean = self.cnn_decoder(feat)  # [..., C, H, W]
            splits = [self.shapes[k][2] for k in self.dec_cnn]
            for key, part in zip(self.dec_cnn, mean.split(splits, -3)):
                dists[key] = MSEDist(part, dims=3)
        if self.dec_mlp:
            hidden = self.mlp_decoder(feat)
            for key in self.dec_mlp:
                dists[key] = MSEDist(self.mlp_out[key](hidden), dims=1)
        return dists

    def reward(self, feat: torch.Tensor | OneHotFeat) -> MSEDist:
        return MSEDist(self.reward_head(feat).squeeze(-1))

    def discount(self, feat: torch.Tensor | OneHotFeat) -> BernoulliDist:
        return BernoulliDist(self.discount_head(feat).squeeze(-1))

    @torch.no_grad()
    def openl(self, data: dict[str, torch.Tensor], context: int = 5) -> np.ndarray:
        """Open-loop prediction video: observe ``context`` frames, then predict the rest from
        the real actions alone. Returns uint8 [T, 3H, B*W, C]: truth / model / error, stacked
        top to bottom, one column per sequence (error is mid-grey where the model is right)."""
        if not self.dec_cnn:
            raise ValueError("open-loop video needs an image decoder")
        key = self.dec_cnn[0]
        embed = self.encode(data)  # [B, T, E]
        post, _ = self.rssm.observe(embed[:, :context], data["action"][:, :context], data["is_first"][:, :context])
        recon = self.decode(self.rssm.feat(post))[key].mode()  # [B, context, C, H, W]
        state = {k: v[:, -1] for k, v in post.items()}
        feats = []
        for t in range(context, data["action"].shape[1]):
            state = self.rssm.img_step(state, data["action"][:, t])
            feats.append(self.rssm.feat(state))
        model = torch.cat([recon, self.decode(torch.stack(feats, 1))[key].mode()], 1) + 0.5  # [B, T, C, H, W]
        truth = data[key] + 0.5
        error = (model - truth + 1) / 2
        video = torch.cat([truth, model, error], -2).clamp(0, 1)  # [B, T, C, 3H, W]
        b, t, c, h, w = video.shape
        video = video.permute(1, 3, 0, 4, 2).reshape(t, h, b * w, c)  # [T, 3H, B*W, C]
        return (video * 255).round().to(torch.uint8).cpu().numpy()

    # -- loss ---------------------------------------------------------------------------------
    def parts(self) -> tuple[str, ...]:
        """Names of the submodules (encoders, RSSM, decoders, heads), for per-module gradient norms."""
        return tuple(name for name, _ in self.named_children())

    def loss(self, data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        cfg = self.cfg
        embed = self.encode(data)  # [B, T, E]
        post, prior = self.rssm.observe(embed, data["action"], data["is_first"])
        kl_loss, kl_parts = kl_balance(self.rssm.kl, post, prior, cfg.kl.balance, cfg.kl.free, cfg.kl.free_avg)
        feat = self.rssm.feat(post)  # [B, T, F]
        grad = lambda head: feat if head in cfg.model.grad_heads else feat.detach()
        losses = {"kl": kl_loss}
        for key, dist in self.decode(grad("decoder")).items():
            losses[key] = -dist.log_prob(data[key]).mean()
        reward = self.reward(grad("reward"))
        losses["reward"] = -reward.log_prob(data["reward"]).mean()
        discount = self.discount(grad("discount")) if cfg.model.pred_discount else None
        if discount is not None:
            losses["discount"] = -discount.log_prob(data["discount"]).mean()
        scales = cfg.loss_scales
        scale = lambda key: (scales.kl if key == "kl" else scales.reward if key == "reward"
                             else scales.discount if key == "discount"
                             else scales.image if key in self.dec_cnn else scales.vector)
        total = sum(scale(k) * v for k, v in losses.items())
        metrics = {f"world_model/{k}_loss": v.detach() for k, v in losses.items()}
        metrics.update(self._diagnostics(data, post, prior, kl_parts, reward, discount))
        return total, post, metrics

    @torch.no_grad()
    def _diagnostics(self, data: dict[str, torch.Tensor], post: State, prior: State, kl_parts: dict[str, torch.Tensor],
                     reward: MSEDist, discount: BernoulliDist | None) -> dict[str, torch.Tensor]:
        """What explains the world model's training: the KL balance, latent usage, head errors
        (from the heads' predictions the losses made, not a second pass of the heads)."""
        metrics = {"world_model/kl": kl_parts["kl"].mean(), "kl/post_term": kl_parts["post_term"],
                   "kl/prior_term": kl_parts["prior_term"], "kl/free_fraction": kl_parts["free_fraction"],
                   "latent/prior_entropy": self.rssm.entropy(prior).mean(),
                   "latent/post_entropy": self.rssm.entropy(post).mean()}
        if self.rssm.discrete:
            perplexity, dead = code_usage(post["stoch"].detach().flatten(0, -3))
            metrics.update({"latent/perplexity_mean": perplexity.mean(), "latent/perplexity_min": perplexity.min(),
                            "latent/dead_codes": dead.sum().float(),
                            "latent/dead_fraction": dead.sum().float() / perplexity.numel() / self.rssm.discrete})
        metrics["world_model/reward_rmse"] = (reward.mode() - data["reward"]).pow(2).mean().sqrt()
        if discount is not None:
            precision, recall = terminal_precision_recall(discount.mean, data["is_terminal"], self.cfg.behavior.discount)
            metrics.update({"world_model/terminal_precision": precision, "world_model/terminal_recall": recall})
        return metrics
