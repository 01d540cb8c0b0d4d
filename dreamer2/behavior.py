"""Actor-critic learned purely in imagination.

From every posterior state of a training batch the world model rolls the actor forward for
``horizon`` steps in latent space. λ-returns computed with the slow critic train the critic
(regression) and the actor (REINFORCE, dynamics backpropagation, or a mix), weighted by the
cumulative predicted discount so that steps after a predicted episode end count less.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .diagnostics import max_entropy
from .distributions import MSEDist, OneHotDist, TruncNormalDist
from .nets import MLPHead, OneHotFeat, sliced_once, stack_feat
from .world_model import State, WorldModel


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor,
                  bootstrap: torch.Tensor, lam: float) -> torch.Tensor:
    """``R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1})`` with ``R_H = bootstrap``.

    All inputs are batch-first [N, H] (bootstrap [N]); returns [N, H]. lam = 1 gives the
    discounted Monte-Carlo return, lam = 0 the one-step TD target.
    """
    next_value = torch.cat([value[:, 1:], bootstrap[:, None]], 1)  # [N, H]
    inputs = reward + discount * next_value * (1 - lam)
    returns, last = [], bootstrap
    for t in reversed(range(reward.shape[1])):
        last = inputs[:, t] + discount[:, t] * lam * last
        returns.append(last)
    return torch.stack(returns[::-1], 1)  # [N, H]


def cumulative_discount(discount: torch.Tensor) -> torch.Tensor:
    """Loss weights for discounts d [N, H]: ``w_0 = 1, w_t = prod_{i<t} d_i`` ([N, H], no gradient)."""
    ones = torch.ones_like(discount[:, :1])
    return torch.cumprod(torch.cat([ones, discount[:, :-1]], 1), 1).detach()


class Actor(nn.Module):
    """Policy over one-hot actions (discrete) or truncated-normal actions in [-1, 1]."""

    def __init__(self, feat: int, action_dim: int, discrete: bool, cfg):
        super().__init__()
        dist = cfg.dist if cfg.dist != "auto" else ("onehot" if discrete else "trunc_normal")
        self.dist_name, self.min_std = dist, cfg.min_std
        out = action_dim if dist == "onehot" else 2 * action_dim
        self.net = MLPHead(feat, out, cfg.layers, cfg.units, cfg.norm)

    def forward(self, feat: torch.Tensor | OneHotFeat) -> OneHotDist | TruncNormalDist:
        return self.dist(self.net(feat))

    def dist(self, x: torch.Tensor) -> OneHotDist | TruncNormalDist:
        """The distribution from the network's output ``x``."""
        if self.dist_name == "onehot":
            return OneHotDist(x)
        mean, std = x.chunk(2, -1)
        return TruncNormalDist(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + self.min_std)

    def mean_square(self, x: torch.Tensor) -> torch.Tensor:
        """The squared pre-tanh mean of continuous actions from the output ``x``, averaged over
        action dimensions [...] (zeros for one-hot actions, which have none)."""
        if self.dist_name == "onehot":
            return x.new_zeros(x.shape[:-1])
        return x.chunk(2, -1)[0].square().mean(-1)


class Critic(nn.Module):
    def __init__(self, feat: int, cfg):
        super().__init__()
        self.net = MLPHead(feat, 1, cfg.layers, cfg.units, cfg.norm)

    def forward(self, feat: torch.Tensor | OneHotFeat) -> MSEDist:
        return MSEDist(self.net(feat).squeeze(-1))


class ActorCritic(nn.Module):
    def __init__(self, feat: int, action_dim: int, discrete: bool, cfg):
        super().__init__()
        self.cfg, self.action_dim, self.discrete = cfg, action_dim, discrete
        self.actor = Actor(feat, action_dim, discrete, cfg.actor)
        self.critic = Critic(feat, cfg.critic)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        grad = cfg.actor.grad
        self.grad = grad if grad != "auto" else ("reinforce" if discrete else "dynamics")
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        if cfg.actor.return_norm:  # EMA of the λ-returns' P95 - P5 (only then: older checkpoints stay loadable)
            self.register_buffer("return_range", torch.zeros(()))

    def imagine(self, wm: WorldModel, start: State, horizon: int) -> dict[str, torch.Tensor]:
        """Roll the actor forward in latent space from start states [N, ...].

        Returns batch-first [N, H+1, ...] features (a ``OneHotFeat`` for sampled one-hot latents)
        and actions (action t led to state t; the start's action is zeros), plus per-step
        log-probabilities, entropies and squared pre-tanh means [N, H] of the policy at states
        0..H-1, computed once here and reused by the actor loss.
        """
        dynamics_grad = self.grad in ("dynamics", "both")
        # Features from sampled one-hot states: layers over them gather their one-hots, which then
        # need not be built where no gradient reaches them.
        gather = wm.rssm.gatherable(start)
        columns_only = gather and not dynamics_grad
        state = start
        feat = wm.rssm.feat(state, gather)
        feats, actions, logps, ents, means = [feat], [], [], [], []
        with sliced_once(self.actor.net.first, wm.rssm.stoch_dim):
            for _ in range(horizon):
                out = self.actor.net(feat.detach())
                dist = self.actor.dist(out)
                action = dist.sample()
                logps.append(dist.log_prob(action.detach()))
                ents.append(dist.entropy())
                means.append(self.actor.mean_square(out))
                with torch.set_grad_enabled(dynamics_grad and torch.is_grad_enabled()):
                    state = wm.rssm.img_step(state, action if dynamics_grad else action.detach(), columns_only=columns_only)
                    feat = wm.rssm.feat(state, gather)
                feats.append(feat)
                actions.append(action)
        actions.insert(0, torch.zeros_like(actions[0]))
        return {"feat": stack_feat(feats, 1), "action": torch.stack(actions, 1),
                "logp": torch.stack(logps, 1), "entropy": torch.stack(ents, 1), "mean_square": torch.stack(means, 1)}

    def losses(self, wm: WorldModel, start: State, is_terminal: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Actor and critic losses from start states [N, ...] and their is_terminal [N]."""
        cfg = self.cfg
        seq = self.imagine(wm, start, cfg.behavior.horizon)
        feat = seq["feat"]  # [N, H+1, F]
        # Rewards and discounts of states 0..H-1: the last state's enter no return, and the first
        # state's discount is the real one. The heads run on those states alone.
        reward = wm.reward(feat[:, :-1]).mode()  # [N, H]
        if cfg.model.pred_discount:
            first = (1.0 - is_terminal.float()) * cfg.behavior.discount  # the real one at step 0
            # [N, H]; the predicted ones are already times gamma (the target was)
            discount = torch.cat([first[:, None], wm.discount(feat[:, 1:-1]).mean], 1)
        else:
            discount = torch.full_like(reward, cfg.behavior.discount)
        weight = cumulative_discount(discount)  # [N, H]
        value = self.slow_critic(feat).mode() if cfg.critic.slow_target else self.critic(feat).mode()
        target = lambda_return(reward, value[:, :-1], discount, value[:, -1], cfg.behavior.discount_lambda)  # [N, H]

        # Actor: the policy at state t (t < H-1) chose action t+1, whose return is target[t+1].
        if cfg.critic.slow_baseline and cfg.critic.slow_target:  # the same network on the same features: reuse
            baseline = value[:, :-2].detach()
        else:
            baseline = (self.slow_critic if cfg.critic.slow_baseline else self.critic)(feat[:, :-2].detach()).mode()
        scale = self.return_scale(target) if cfg.actor.return_norm else 1.0
        ret = target[:, 1:] / scale  # the actor's return, normalized once for both of its terms
        advantage = (ret - baseline / scale).detach()  # [N, H-1]
        reinforce = seq["logp"][:, :-1] * advantage
        mix = {"reinforce": 0.0, "dynamics": 1.0}.get(self.grad, cfg.actor.grad_mix)
        entropy = seq["entropy"][:, :-1]
        w = weight[:, :-1]
        # The loss split into its terms (they sum to it): what drives the actor, logged as is.
        terms = {"reinforce": -(w * (1 - mix) * reinforce).mean(), "dynamics": -(w * mix * ret).mean(),
                 "entropy": -(w * cfg.actor.entropy * entropy).mean(),
                 "mean_reg": (w * cfg.actor.mean_reg * seq["mean_square"][:, :-1]).mean()}
        actor_loss = sum(terms.values())

        # Critic: regress the λ-return from the imagined features.
        critic_dist = self.critic(feat[:, :-1].detach())
        critic_loss = -(critic_dist.log_prob(target.detach()) * weight).mean()

        metrics = {f"actor/{k}_term": v.detach() for k, v in terms.items()}
        metrics.update({
            "actor/entropy": entropy.mean().detach(),
            "actor/entropy_fraction": entropy.mean().detach() / max_entropy(self.action_dim, self.discrete),
            "actor/advantage_mean": advantage.mean(),
            "actor/advantage_std": advantage.std(),
            "critic/error_rmse": (critic_dist.mode() - target).detach().pow(2).mean().sqrt(),
            "behavior/lambda_return": target.mean().detach(),
            "behavior/value": value.mean().detach(),
            "behavior/imag_reward": reward.mean().detach(),
            "behavior/imag_discount": discount.mean().detach(),
        })
        if cfg.actor.return_norm:
            metrics["actor/return_scale"] = torch.as_tensor(scale)
        if self.actor.dist_name == "trunc_normal":  # past ~3 the mean sits at a bound, where tanh passes no gradient
            metrics["actor/pre_tanh_mean_rms"] = seq["mean_square"].mean().sqrt().detach()
        return actor_loss, critic_loss, metrics

    def return_scale(self, target: torch.Tensor, decay: float = 0.99) -> torch.Tensor:
        """``max(1, S)``: S an EMA of the 95th - 5th percentile range of the λ-returns (DreamerV3).

        The EMA moves only while gradients are on (a training step), and starts at the first
        batch's range rather than at zero, so early steps are not divided by a biased-low scale.
        """
        if torch.is_grad_enabled():
            low, high = torch.quantile(target.detach().float().flatten(),
                                       torch.tensor([0.05, 0.95], device=target.device))
            ema = decay * self.return_range + (1 - decay) * (high - low)
            self.return_range.copy_(torch.where(self.updates == 0, high - low, ema))  # no host sync
        return self.return_range.clamp_min(1.0)

    def update_slow_critic(self) -> None:
        """Copy the critic into the slow critic every ``slow_target_update`` updates."""
        cfg = self.cfg.critic
        if cfg.slow_target and int(self.updates) % cfg.slow_target_update == 0:
            mix = 1.0 if int(self.updates) == 0 else cfg.slow_target_fraction
            with torch.no_grad():
                for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                    slow.mul_(1 - mix).add_(mix * fast)
        self.updates += 1
