import torch

from dreamer2.behavior import cumulative_discount, lambda_return
from dreamer2.config import make_config
from dreamer2.behavior import ActorCritic


def test_lambda_return_three_steps_by_hand():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    v = torch.tensor([[10.0, 20.0, 30.0]])
    d = torch.tensor([[0.9, 0.8, 0.5]])
    boot = torch.tensor([40.0])
    lam = 0.5
    # R_3 = 40
    # R_2 = 3 + 0.5 * (0.5 * 40 + 0.5 * 40) = 23
    # R_1 = 2 + 0.8 * (0.5 * 30 + 0.5 * 23) = 23.2
    # R_0 = 1 + 0.9 * (0.5 * 20 + 0.5 * 23.2) = 20.44
    expected = torch.tensor([[20.44, 23.2, 23.0]])
    torch.testing.assert_close(lambda_return(r, v, d, boot, lam), expected)


def test_lambda_return_limits():
    r = torch.tensor([[1.0, 1.0, 1.0]])
    v = torch.tensor([[5.0, 6.0, 7.0]])
    d = torch.full((1, 3), 0.5)
    boot = torch.tensor([8.0])
    # lam = 1: discounted Monte-Carlo return bootstrapped at the end.
    mc = lambda_return(r, v, d, boot, 1.0)
    torch.testing.assert_close(mc[0, 0], torch.tensor(1 + 0.5 * (1 + 0.5 * (1 + 0.5 * 8))))
    # lam = 0: one-step TD targets r_t + d_t v_{t+1}.
    td = lambda_return(r, v, d, boot, 0.0)
    torch.testing.assert_close(td, torch.tensor([[1 + 0.5 * 6, 1 + 0.5 * 7, 1 + 0.5 * 8]]))


def test_cumulative_discount_weights():
    d = torch.tensor([[0.9, 0.5, 0.0, 0.7]], requires_grad=True)
    w = cumulative_discount(d)
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.9, 0.45, 0.0]]))
    assert not w.requires_grad


def _actor_critic(grad: str, discrete: bool, **overrides):
    from dreamer2.world_model import WorldModel
    import numpy as np
    cfg = make_config("debug", {"actor.grad": grad, **overrides})
    wm = WorldModel({"vector": ((3,), np.float32)}, 2, cfg)
    ac = ActorCritic(wm.rssm.feat_dim, 2, discrete, cfg)
    start = {k: v.detach() for k, v in wm.rssm.initial(6, "cpu").items()}
    start["deter"] = torch.randn(6, cfg.rssm.deter)
    return wm, ac, start


def _backward_actor_loss(grad: str, discrete: bool):
    """Build a frozen world model and an actor-critic, and backpropagate the actor loss once."""
    torch.manual_seed(0)
    wm, ac, start = _actor_critic(grad, discrete)
    wm.requires_grad_(False)
    actor_loss, _, _ = ac.losses(wm, start, torch.zeros(6))
    actor_loss.backward()
    return wm, ac


def test_reinforce_actor_gradient_reaches_actor_not_world_model():
    wm, ac = _backward_actor_loss("reinforce", True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ac.actor.parameters())
    assert all(p.grad is None for p in wm.parameters())
    assert all(p.grad is None for p in ac.critic.parameters())


def test_dynamics_actor_gradient_flows_through_imagined_states():
    # With dynamics gradients the actor's loss depends on its parameters through the model only.
    wm, ac = _backward_actor_loss("dynamics", False)
    grads = [p.grad for p in ac.actor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_slow_critic_hard_copy_every_n_updates():
    wm, ac, start = _actor_critic("reinforce", True)
    every = ac.cfg.critic.slow_target_update
    first = [p.clone() for p in ac.slow_critic.parameters()]
    ac.update_slow_critic()  # update 0 copies
    with torch.no_grad():
        for p in ac.critic.parameters():
            p.add_(1.0)
    for _ in range(every - 1):  # updates 1..every-1 do not copy
        ac.update_slow_critic()
    for p, q in zip(ac.slow_critic.parameters(), first):
        torch.testing.assert_close(p, q)
    ac.update_slow_critic()  # update `every` copies
    for p, q in zip(ac.slow_critic.parameters(), ac.critic.parameters()):
        torch.testing.assert_close(p, q)


def test_return_scale_is_an_ema_of_the_percentile_range_floored_at_one():
    _, ac, _ = _actor_critic("dynamics", False, **{"actor.return_norm": True})
    target = torch.arange(101.0)[None]  # P5 = 5, P95 = 95 (linear interpolation): range 90
    assert float(ac.return_scale(target)) == 90.0  # the first batch sets the EMA
    ac.updates += 1
    assert abs(float(ac.return_scale(torch.arange(11.0)[None])) - (0.99 * 90 + 0.01 * 9)) < 1e-4
    with torch.no_grad():  # outside a training step the EMA holds still
        assert abs(float(ac.return_scale(torch.zeros(1, 5))) - 89.19) < 1e-4
    ac.return_range.fill_(0.3)
    assert float(ac.return_scale(torch.zeros(1, 5))) == 1.0  # max(1, S): small ranges are not blown up


def test_return_norm_divides_the_actor_return_terms_by_the_scale():
    for grad in ("reinforce", "dynamics"):
        terms = {}
        for norm in (False, True):
            torch.manual_seed(0)
            wm, ac, start = _actor_critic(grad, grad == "reinforce", **{"actor.return_norm": norm})
            with torch.no_grad():  # values spread over tens, so that the scale is well above its floor of 1
                ac.slow_critic.net.out.weight.mul_(100.0)
            _, _, metrics = ac.losses(wm, start, torch.zeros(6))
            terms[norm] = metrics
        scale = float(terms[True]["actor/return_scale"])
        assert scale > 2.0
        term = f"actor/{grad}_term"
        torch.testing.assert_close(terms[True][term] * scale, terms[False][term])
        torch.testing.assert_close(terms[True]["actor/entropy_term"], terms[False]["actor/entropy_term"])


def test_mean_reg_penalizes_the_squared_pre_tanh_mean_and_pulls_it_back_from_a_bound():
    """``actor.mean_reg c`` adds c * mean(w * m^2) over the imagined states the actor is trained
    on (m the pre-tanh mean, w the cumulative discount), by hand; its gradient pulls a mean far
    past tanh's range back towards 0, where the return's gradient through tanh has all but gone."""
    grads = {}
    for c in (0.0, 0.5):
        torch.manual_seed(0)
        wm, ac, start = _actor_critic("dynamics", False, **{"actor.mean_reg": c, "actor.entropy": 0.0,
                                                            "model.pred_discount": False})
        with torch.no_grad():
            ac.actor.net.out.bias[:2] = 6.0  # both pre-tanh means ~6: tanh' ~ 2e-5
        wm.requires_grad_(False)
        torch.manual_seed(1)
        seq = ac.imagine(wm, start, ac.cfg.behavior.horizon)
        torch.manual_seed(1)
        loss, _, metrics = ac.losses(wm, start, torch.zeros(6))
        mean = ac.actor.net(seq["feat"][:, :-2].detach())[..., :2]  # [N, H-1, 2]
        w = ac.cfg.behavior.discount ** torch.arange(ac.cfg.behavior.horizon - 1.0)  # [H-1]
        torch.testing.assert_close(metrics["actor/mean_reg_term"], c * (w * mean.square().mean(-1)).mean())
        loss.backward()
        grads[c] = ac.actor.net.out.bias.grad[:2]
    assert (grads[0.5] > 0).all()  # descent lowers both means
    assert (grads[0.5].abs() > 1000 * grads[0.0].abs()).all()  # without it, next to nothing moves them


def test_returns_read_the_rewards_of_states_0_to_h_minus_1_and_the_predicted_discounts_of_1_to_h_minus_1():
    """The reward and discount heads run only on the imagined states whose predictions enter the
    λ-returns: rewards of states 0..H-1, discounts of 1..H-1 after the real one at state 0. The
    same imagination, with its heads run on every state, must give the logged means and the
    critic's targets."""
    from dreamer2.behavior import lambda_return
    torch.manual_seed(0)
    wm, ac, start = _actor_critic("reinforce", True)
    is_terminal = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    horizon, gamma, lam = ac.cfg.behavior.horizon, ac.cfg.behavior.discount, ac.cfg.behavior.discount_lambda
    torch.manual_seed(1)
    _, _, metrics = ac.losses(wm, start, is_terminal)
    torch.manual_seed(1)
    feat = ac.imagine(wm, start, horizon)["feat"]  # the same draws
    with torch.no_grad():
        reward = wm.reward(feat).mode()[:, :-1]  # [N, H]
        discount = torch.cat([(1 - is_terminal[:, None]) * gamma, wm.discount(feat).mean[:, 1:-1]], 1)
        value = ac.slow_critic(feat).mode()
    assert reward.shape == discount.shape == (6, horizon)
    torch.testing.assert_close(metrics["behavior/imag_reward"], reward.mean())
    torch.testing.assert_close(metrics["behavior/imag_discount"], discount.mean())
    target = lambda_return(reward, value[:, :-1], discount, value[:, -1], lam)
    torch.testing.assert_close(metrics["behavior/lambda_return"], target.mean())


def test_logged_actor_terms_add_up_to_the_actor_loss():
    for grad in ("reinforce", "dynamics", "both"):
        torch.manual_seed(0)
        wm, ac, start = _actor_critic(grad, grad != "dynamics")
        actor_loss, _, metrics = ac.losses(wm, start, torch.zeros(6))
        total = metrics["actor/reinforce_term"] + metrics["actor/dynamics_term"] + metrics["actor/entropy_term"]
        torch.testing.assert_close(total, actor_loss.detach())
        assert metrics["actor/entropy_term"] != 0
        if grad == "both":
            assert metrics["actor/reinforce_term"] != 0 and metrics["actor/dynamics_term"] != 0


def test_gathered_one_hot_layers_match_the_dense_product():
    """Layers over sampled one-hot latents gather the weight columns the one-hots pick
    (OneHotFeat) instead of multiplying the dense vector, and pass the straight-through
    gradient to the one-hots where dynamics gradients need it: the same sums, so the losses and
    every gradient must match the plain path, for each kind of actor gradient."""
    for grad, discrete in (("reinforce", True), ("dynamics", False), ("both", True)):
        runs = []
        for gather in (True, False):
            torch.manual_seed(0)
            wm, ac, _ = _actor_critic(grad, discrete)
            wm.rssm.gather_onehot = gather
            embed = wm.encode({"vector": torch.randn(2, 3, 3)})
            post, _ = wm.rssm.observe(embed, torch.zeros(2, 3, 2), torch.zeros(2, 3))
            start = {k: v.detach().flatten(0, 1) for k, v in post.items()}  # [6, ...], with columns
            wm.requires_grad_(False)
            actor_loss, critic_loss, _ = ac.losses(wm, start, torch.zeros(6))
            (actor_loss + critic_loss).backward()
            runs.append((actor_loss.detach(), critic_loss.detach(), [p.grad for p in ac.parameters()]))
        (a1, c1, g1), (a2, c2, g2) = runs
        torch.testing.assert_close(a1, a2, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(c1, c2, atol=1e-6, rtol=1e-5)
        assert sum(g is not None for g in g1) == sum(g is not None for g in g2) > 0
        for x, y in zip(g1, g2):
            assert (x is None) == (y is None)
            if x is not None:
                torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


def test_actor_out_scale_zero_starts_every_state_at_mean_zero_and_still_learns():
    """``actor.out_scale 0`` zeroes the actor's output layer at construction: the first policy's
    mean is 0 (its mode acts 0) in every state, with the default std, and the layer still gets a
    gradient. The default (1) keeps the reference's Glorot init."""
    import numpy as np
    from gymnasium import spaces
    from dreamer2.agent import Agent
    torch.manual_seed(0)
    obs_space = {"vector": ((5,), np.float32)}
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    zero = Agent(make_config("debug", {"actor.out_scale": 0.0}), obs_space, act_space)
    glorot = Agent(make_config("debug"), obs_space, act_space)
    feat = torch.randn(7, zero.wm.rssm.feat_dim)
    dist = zero.ac.actor(feat)
    torch.testing.assert_close(dist.mode(), torch.zeros(7, 2))
    torch.testing.assert_close(dist.scale, torch.full((7, 2), 1.0 + zero.cfg.actor.min_std))  # 2 sigmoid(0) + min_std
    assert glorot.ac.actor(feat).mode().abs().min() > 0
    (-dist.log_prob(torch.full((7, 2), 0.5)).sum()).backward()
    assert zero.ac.actor.net.out.weight.grad.abs().sum() > 0
