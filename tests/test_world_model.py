import numpy as np
import pytest
import torch

from dreamer2.config import make_config
from dreamer2.world_model import RSSM, WorldModel, kl_balance


def _rssm():
    torch.manual_seed(0)
    return RSSM(action_dim=2, embed_dim=8, deter=16, hidden=16, stoch=4, discrete=3)


def test_kl_balance_value_and_gradient_sides():
    rssm = _rssm()
    post_logits = torch.randn(5, 4, 3, requires_grad=True)
    prior_logits = torch.randn(5, 4, 3, requires_grad=True)
    post, prior = {"logits": post_logits}, {"logits": prior_logits}
    loss, parts = kl_balance(rssm.kl, post, prior, balance=0.8, free=0.0, free_avg=True)
    kl = rssm.kl(post, prior)
    # Value: both sides have the same value, so the balanced loss equals the mean KL.
    torch.testing.assert_close(loss, kl.mean())
    torch.testing.assert_close(parts["kl"], kl.detach())
    torch.testing.assert_close(parts["post_term"], 0.2 * kl.mean().detach())
    torch.testing.assert_close(parts["prior_term"], 0.8 * kl.mean().detach())
    loss.backward()
    g_post, g_prior = post_logits.grad.clone(), prior_logits.grad.clone()
    post_logits.grad = prior_logits.grad = None
    kl.mean().backward()
    # The posterior side gets 0.2 of the full gradient, the prior side 0.8.
    torch.testing.assert_close(g_post, 0.2 * post_logits.grad)
    torch.testing.assert_close(g_prior, 0.8 * prior_logits.grad)


def test_kl_balance_free_nats_clip_after_averaging():
    rssm = _rssm()
    logits = torch.zeros(5, 4, 3, requires_grad=True)
    post, prior = {"logits": logits}, {"logits": torch.zeros(5, 4, 3)}
    loss, parts = kl_balance(rssm.kl, post, prior, balance=0.8, free=1.0, free_avg=True)
    assert loss.item() == 1.0  # KL is 0 < 1 free nat, so the loss is the constant
    assert parts["free_fraction"].item() == 1.0
    loss.backward()
    assert logits.grad is None or logits.grad.abs().sum() == 0


def test_is_first_resets_state():
    rssm = _rssm()
    state = {k: torch.randn_like(v) for k, v in rssm.initial(2, "cpu").items()}
    action, embed = torch.randn(2, 2), torch.randn(2, 8)
    zero = rssm.initial(2, "cpu")
    torch.manual_seed(1)
    post_reset, _ = rssm.obs_step(state, action, embed, torch.tensor([1.0, 0.0]), sample=False)
    torch.manual_seed(1)
    post_zero, _ = rssm.obs_step(zero, torch.zeros(2, 2), embed, torch.zeros(2), sample=False)
    torch.manual_seed(1)
    post_keep, _ = rssm.obs_step(state, action, embed, torch.zeros(2), sample=False)
    # Row 0 was reset: identical to starting from the zero state with a zero action.
    torch.testing.assert_close(post_reset["deter"][0], post_zero["deter"][0])
    # Row 1 was not: it continues from its own state.
    torch.testing.assert_close(post_reset["deter"][1], post_keep["deter"][1])
    assert not torch.allclose(post_reset["deter"][1], post_zero["deter"][1])


def _batch(b=2, t=10, image=True):
    rng = np.random.default_rng(0)
    batch = {"action": np.eye(3, dtype=np.float32)[rng.integers(3, size=(b, t))],
             "reward": rng.normal(size=(b, t)).astype(np.float32),
             "is_first": np.zeros((b, t), bool), "is_last": np.zeros((b, t), bool),
             "is_terminal": np.zeros((b, t), bool), "vector": rng.normal(size=(b, t, 5)).astype(np.float32)}
    if image:
        batch["image"] = rng.integers(0, 256, size=(b, t, 64, 64, 3), dtype=np.uint8)
    return batch


def test_world_model_loss_shapes_and_gradients_image_and_vector():
    cfg = make_config("debug")
    wm = WorldModel({"image": ((64, 64, 3), np.uint8), "vector": ((5,), np.float32)}, 3, cfg)
    data = wm.preprocess(_batch(), "cpu")
    assert data["image"].shape == (2, 10, 3, 64, 64)
    assert data["image"].min() >= -0.5 and data["image"].max() <= 0.5
    loss, post, metrics = wm.loss(data)
    assert post["stoch"].shape == (2, 10, cfg.rssm.stoch, cfg.rssm.discrete)
    for key in ("image", "vector", "reward", "discount", "kl"):
        assert f"world_model/{key}_loss" in metrics
    loss.backward()
    for name, p in wm.named_parameters():
        assert p.grad is not None, name


def test_gaussian_latents_option():
    cfg = make_config("debug", {"rssm.discrete": 0})
    wm = WorldModel({"vector": ((5,), np.float32)}, 3, cfg)
    loss, post, _ = wm.loss(wm.preprocess(_batch(image=False), "cpu"))
    assert post["stoch"].shape == (2, 10, cfg.rssm.stoch)
    loss.backward()


def test_discount_target_and_reward_transform():
    cfg = make_config("debug", {"model.clip_rewards": "tanh"})
    wm = WorldModel({"vector": ((5,), np.float32)}, 3, cfg)
    batch = _batch(image=False)
    batch["is_terminal"][0, 4] = True
    data = wm.preprocess(batch, "cpu")
    assert data["discount"][0, 4] == 0 and data["discount"][0, 3] == cfg.behavior.discount
    torch.testing.assert_close(data["reward"], torch.tanh(torch.as_tensor(batch["reward"])))


def test_obs_norm_running_statistics_match_the_pooled_batches_and_standardize():
    cfg = make_config("debug", {"model.obs_norm": True})
    space = {"image": ((64, 64, 3), np.uint8), "vector": ((5,), np.float32), "aux": ((2,), np.float32)}
    wm = WorldModel(space, 3, cfg)
    rng = np.random.default_rng(1)
    batches = []
    for scale in (0.04, 3.0):  # two batches of very different spread: the pooled variance is not their mean
        batch = _batch()
        batch["vector"] = (rng.normal(size=(2, 10, 5)) * scale + 1.5).astype(np.float32)
        batch["aux"] = (rng.normal(size=(2, 10, 2)) * [0.01, 100.0]).astype(np.float32)
        batches.append(batch)
    assert torch.equal(wm.preprocess(batches[0], "cpu")["vector"], torch.as_tensor(batches[0]["vector"]))  # no data yet
    for batch in batches:
        wm.update_obs_stats(batch)
    for key in ("vector", "aux"):
        pooled = np.concatenate([b[key].reshape(-1, space[key][0][0]) for b in batches]).astype(np.float64)
        mean, std = wm.obs_scale(key)
        np.testing.assert_allclose(mean.numpy(), pooled.mean(0), rtol=1e-5)
        np.testing.assert_allclose(std.numpy(), pooled.std(0), rtol=1e-5)
        both = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        normed = wm.preprocess(both, "cpu")[key].flatten(0, 1)
        np.testing.assert_allclose(normed.mean(0).numpy(), 0.0, atol=1e-5)
        np.testing.assert_allclose(normed.std(0, unbiased=False).numpy(), 1.0, rtol=1e-4)
    assert wm.obs_count.item() == 40
    assert {"obs_count", "obs_mean", "obs_m2"} <= set(wm.state_dict())  # checkpointed with the weights
    plain = WorldModel(space, 3, make_config("debug"))
    plain.update_obs_stats(batches[0])
    assert "obs_mean" not in plain.state_dict()
    assert torch.equal(plain.preprocess(batches[0], "cpu")["aux"], torch.as_tensor(batches[0]["aux"]))


def test_decoder_first_layer_equals_transposed_convolution_of_1x1_map():
    from dreamer2.nets import ConvDecoder
    torch.manual_seed(0)
    dec = ConvDecoder(feat=10, channels=3, depth=4, kernels=[5, 5, 6, 6])
    conv = torch.torch.nn.ConvTranspose2d(32 * 4, 16, 5, stride=2)
    with torch.no_grad():  # Linear weight [out*k*k, in] -> ConvT weight [in, out, k, k]
        conv.weight.copy_(dec.first.weight.T.reshape(128, 16, 5, 5))
        dec.first_bias.copy_(torch.randn(16))
        conv.bias.copy_(dec.first_bias)
    h = torch.randn(7, 128)
    ours = dec.first(h).reshape(7, 16, 5, 5) + dec.first_bias[:, None, None]
    torch.testing.assert_close(ours, conv(h[:, :, None, None]))
    assert dec(torch.randn(2, 3, 10)).shape == (2, 3, 3, 64, 64)


def test_reward_scale_applies_before_the_transform():
    cfg = make_config("debug", {"model.reward_scale": 0.1, "model.clip_rewards": "tanh"})
    wm = WorldModel({"vector": ((5,), np.float32)}, 3, cfg)
    batch = _batch(image=False)
    batch["reward"][:] = -16.0
    data = wm.preprocess(batch, "cpu")
    torch.testing.assert_close(data["reward"], torch.full((2, 10), float(np.tanh(-1.6))))


@pytest.mark.parametrize("sequence_weights", [False, True])
def test_observe_fast_path_equals_the_plain_filter(monkeypatch, sequence_weights):
    """observe computes the embedding's part of the posterior Dense outside the loop (and slices
    its weight's columns for deter once), the prior's head once over all frames after it, and
    (for large weights, here all) the loop's weight gradients once per sequence; the textbook
    filter (img_step, then the Dense over [deter, embed], at every step) must give the same
    posterior and prior and gradients."""
    from dreamer2 import nets
    monkeypatch.setattr(nets, "sequence_min_size", 0 if sequence_weights else 2 ** 62)
    torch.manual_seed(0)
    rssm = _rssm()
    embed = torch.randn(3, 6, 8, requires_grad=True)
    action, is_first = torch.randn(3, 6, 2), torch.zeros(3, 6)
    is_first[1, 3] = 1.0
    post, prior = rssm.observe(embed, action, is_first)
    state, plain, plain_prior = rssm.initial(3, "cpu"), [], []
    for t in range(6):
        keep = 1.0 - is_first[:, t]
        state = {k: v * keep.reshape(-1, *([1] * (v.dim() - 1))) for k, v in state.items()}
        step = rssm.img_step(state, action[:, t] * keep[:, None])
        logits = rssm.obs_out(torch.cat([step["deter"], embed[:, t]], -1)).reshape(3, 4, 3)
        state = {"deter": step["deter"], "logits": logits, "stoch": post["stoch"][:, t]}  # same sample
        plain.append(logits)
        plain_prior.append(step["logits"])
    plain, plain_prior = torch.stack(plain, 1), torch.stack(plain_prior, 1)
    torch.testing.assert_close(post["logits"], plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(prior["logits"], plain_prior, atol=1e-6, rtol=1e-5)
    params = [embed, *rssm.parameters()]
    g_fast = torch.autograd.grad((post["logits"].square().sum() + prior["logits"].cos().sum()), params,
                                 retain_graph=True, allow_unused=True)
    g_plain = torch.autograd.grad((plain.square().sum() + plain_prior.cos().sum()), params, allow_unused=True)
    for fast, slow in zip(g_fast, g_plain):
        assert (fast is None) == (slow is None)
        if fast is not None:
            torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_channels_last_convolutions_match_the_plain_layout():
    """The encoder and decoder run in channels_last memory, the encoder's layers with few output
    positions as GEMMs of their patches (here the last three: batch 5), and the decoder's hidden
    transposed convolutions add their (here nonzero) bias after the kernel; the same weights as
    plain convolutions in the default layout must give the same outputs and gradients."""
    import copy

    from dreamer2.nets import ConvDecoder, ConvEncoder
    torch.manual_seed(0)
    for fast, x in ((ConvEncoder(3, 4, [4, 4, 4, 4], (64, 64)), torch.randn(5, 3, 64, 64)),
                    (ConvDecoder(20, 3, 4, [5, 5, 6, 6]), torch.randn(5, 20))):
        plain = copy.deepcopy(fast)
        plain.net.to(memory_format=torch.contiguous_format)
        assert next(p for p in fast.net.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
        plain.forward = lambda v, m=plain: _plain_forward(m, v)
        out_fast, out_plain = fast(x), plain(x)
        torch.testing.assert_close(out_fast, out_plain, atol=1e-5, rtol=1e-4)
        out_fast.square().sum().backward()
        out_plain.square().sum().backward()
        for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_output_transposed_conv_is_the_transposed_convolution():
    """The decoder's output layer as one GEMM and per-phase adds: outputs and all three gradients
    of PyTorch's transposed convolution, for 1 and 3 channels, non-square inputs, kernels of one,
    two and three times the stride, and a layer without bias."""
    from dreamer2.nets import _OutputTransposedConv
    torch.manual_seed(0)
    for c_out, kernel, stride, bias in ((1, 6, 2, True), (3, 4, 2, True), (2, 6, 3, False), (3, 2, 2, True)):
        layer = torch.nn.ConvTranspose2d(5, c_out, kernel, stride=stride, bias=bias)
        assert _OutputTransposedConv.handles(layer)
        x = torch.randn(4, 5, 7, 9).contiguous(memory_format=torch.channels_last).requires_grad_()
        fast = _OutputTransposedConv.apply(x, layer.weight, layer.bias, stride)
        plain = torch.nn.functional.conv_transpose2d(x.contiguous(), layer.weight, layer.bias, stride)
        torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
        grad = torch.randn_like(plain)
        inputs = (x, layer.weight) + ((layer.bias,) if bias else ())
        for a, b in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not _OutputTransposedConv.handles(torch.nn.ConvTranspose2d(5, 1, 5, stride=2))  # 5 is no multiple of 2
    assert not _OutputTransposedConv.handles(torch.nn.ConvTranspose2d(5, 1, 6, stride=2, padding=1))


def test_small_map_transposed_conv_is_the_transposed_convolution():
    """The decoder's layer on a small map as GEMMs (forward: columns added at each kernel offset;
    backward: the output gradient's patches by two GEMMs): outputs and all three gradients of
    PyTorch's transposed convolution, for odd and even kernels, unequal strides, a non-square map
    and a layer without bias; an ELU may then work on its output in place. Larger maps keep
    oneDNN's kernel."""
    from dreamer2.nets import _SmallMapTransposedConv
    torch.manual_seed(0)
    for c_out, kernel, stride, bias in ((6, 5, (2, 2), True), (4, 4, (2, 1), False), (3, 3, (1, 3), True)):
        layer = torch.nn.ConvTranspose2d(5, c_out, kernel, stride=stride, bias=bias)
        layer.to(memory_format=torch.channels_last)
        x = torch.randn(4, 5, 3, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
        assert _SmallMapTransposedConv.handles(layer, x)
        fast = torch.nn.functional.elu(_SmallMapTransposedConv.apply(x, layer.weight, layer.bias, stride), inplace=True)
        plain = torch.nn.functional.elu(torch.nn.functional.conv_transpose2d(x.contiguous(), layer.weight.contiguous(),
                                                                             layer.bias, stride))
        torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
        assert fast.is_contiguous(memory_format=torch.channels_last)
        grad = torch.randn_like(plain)
        inputs = (x, layer.weight) + ((layer.bias,) if bias else ())
        for a, b in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not _SmallMapTransposedConv.handles(torch.nn.ConvTranspose2d(5, 3, 6, stride=2), torch.randn(1, 5, 13, 13))


def _graph_nodes(fn) -> list[str]:
    """The names of the autograd nodes reachable from ``fn``, each once."""
    seen, todo, names = set(), [fn], []
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        todo.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def test_sequence_weights_give_the_weight_gradients_of_the_plain_recurrence(monkeypatch):
    """Inside SequenceWeights a layer's weight gradient is one GEMM over all the steps' rows: the
    same gradients (and outputs) as the plain loop for a layer, a weight slice and a small layer
    left out by the size rule; a backward that skips the weights (autograd.grad of the input, the
    graph kept) leaves nothing that a later full backward counts twice; under no_grad the layers
    work as usual and leave no alias behind."""
    from dreamer2 import nets
    monkeypatch.setattr(nets, "sequence_min_size", 100)
    torch.manual_seed(0)
    cell = nets.Linear(12, 12)  # 144 entries: deferred
    head = nets.Linear(12, 12)
    small = nets.Linear(12, 3)  # 36: below the size rule, as usual
    x0 = torch.randn(5, 12, requires_grad=True)

    def run(defer: bool) -> tuple[torch.Tensor, torch.Tensor]:
        h, outs = x0, []
        with nets.SequenceWeights([cell, small] if defer else []) as seq:
            slice_ = seq.weight(head.weight[:, :12]) if defer else head.weight[:, :12]
            assert ("sequence_weight" in cell.__dict__) == defer and "sequence_weight" not in small.__dict__
            for _ in range(4):
                h = torch.tanh(cell(h) + nets.dense(h, slice_))
                outs.append(small(h))
        assert "sequence_weight" not in cell.__dict__
        if torch.is_grad_enabled():  # the cell and the slice at each of 4 steps; not the small layer
            assert _graph_nodes(h.grad_fn).count("_StepDenseBackward") == (8 if defer else 0)
        return h, torch.stack(outs)

    params = [x0, cell.weight, cell.bias, head.weight, small.weight, small.bias]
    h, outs = run(False)
    plain = torch.autograd.grad(h.square().sum() + outs.sum(), params)
    h, outs = run(True)
    loss = h.square().sum() + outs.sum()
    torch.autograd.grad(loss, [x0], retain_graph=True)  # the input alone: the weights' backward skipped
    deferred = torch.autograd.grad(loss, params)
    for a, b in zip(deferred, plain):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(run(True)[0], run(False)[0], atol=0, rtol=0)


def test_dense_is_f_linear_with_its_gradients_where_it_runs_as_a_convolution(monkeypatch):
    """nets.dense computes a CPU fp32 product of >= 2^28 multiply-adds as oneDNN's 1x1 convolution:
    the same function as F.linear and the same gradients, for a 3-D input, a weight slice (the
    dense part of a one-hot layer), no bias, and an activation in place on its output (as every
    MLP does)."""
    from dreamer2 import nets
    torch.manual_seed(0)
    weight = (0.1 * torch.randn(520, 300)).requires_grad_()
    bias = (0.1 * torch.randn(512)).requires_grad_()
    for shape, cols, b, fast in (((4, 512, 256), slice(0, 256), bias, True),  # 2048 x 256 x 512 = 2^28
                                 ((2048, 256), slice(44, 300), None, True), ((2047, 256), slice(0, 256), bias, False)):
        x = (0.1 * torch.randn(*shape)).requires_grad_()
        results = []
        for on in (True, False):
            monkeypatch.setattr(nets, "use_onednn_linear", on)
            out = nets.dense(x, weight[:512, cols], b)
            assert ("RowsConv" in type(out.grad_fn).__name__) == (on and fast)
            out = torch.nn.functional.elu(out, inplace=True)
            inputs = [x, weight] + ([b] if b is not None else [])
            results.append((out.detach(), *torch.autograd.grad(out.square().sum(), inputs)))
        for a, b_ in zip(*results):
            torch.testing.assert_close(a, b_, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # acting and targets: no graph, the same values
        x = torch.randn(2048, 256)
        torch.testing.assert_close(nets.dense(x, weight[:512, :256]), x @ weight[:512, :256].t(), atol=1e-5, rtol=1e-4)


def test_acting_encoder_computes_small_convolutions_as_gemms_with_the_same_output():
    """Without gradient (acting) convolutions with few output positions run as one GEMM of their
    patches (nets.conv_as_gemm): the same function as the convolution, with and without norm."""
    from dreamer2.nets import ConvEncoder, conv_as_gemm, few_outputs
    torch.manual_seed(0)
    for norm in (False, True):
        encoder = ConvEncoder(3, 4, [4, 4, 4, 4], (64, 64), norm=norm)
        for batch in (1, 3, 5):  # 31x31 outputs per image in the first layer: a GEMM at batch 1 only
            x = torch.rand(batch, 3, 64, 64) - 0.5
            with torch.no_grad():
                torch.testing.assert_close(encoder(x), _plain_forward(encoder, x), atol=1e-5, rtol=1e-4)
    conv = torch.nn.Conv2d(6, 7, (4, 3), stride=(2, 1)).to(memory_format=torch.channels_last)
    x = torch.randn(3, 6, 9, 5).contiguous(memory_format=torch.channels_last)  # 3 x 3 outputs per image
    torch.testing.assert_close(conv_as_gemm(conv, x), conv(x), atol=1e-5, rtol=1e-4)
    assert few_outputs(conv, x[:1], most=24) and not few_outputs(conv, x, most=24)  # 9 <= 24 < 27
    assert few_outputs(conv, x, most=24, per_image=9) and not few_outputs(conv, x, most=24, per_image=8)


def test_conv_as_gemm_passes_the_convolution_s_gradients():
    """In training the encoder's last layer runs as a GEMM of its patches; the patches' backward
    adds their gradients back per kernel offset (nets._Patches). Overlapping windows in both
    directions (kernel 4 at stride 2, kernel 3 at stride 1): the input's, weight's and bias's
    gradients must be the convolution's."""
    from dreamer2.nets import conv_as_gemm
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 7, (4, 3), stride=(2, 1)).to(memory_format=torch.channels_last)
    x = torch.randn(3, 6, 9, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out, ref = conv_as_gemm(conv, x), conv(x)  # 3 x 5 outputs per image
    grad = torch.randn_like(ref)
    inputs = [x, conv.weight, conv.bias]
    for a, b in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _plain_forward(module, x):
    from dreamer2.nets import ConvDecoder
    if isinstance(module, ConvDecoder):
        h = module.first(module.linear(x)).reshape(-1, *module.first_shape) + module.first_bias[:, None, None]
        return module.net(h.contiguous())
    return module.net(x.contiguous()).reshape(x.shape[0], -1)


def test_one_hot_feat_linear_gathers_the_same_sum_and_gradients():
    from dreamer2.nets import OneHotFeat, linear
    torch.manual_seed(0)
    index = torch.randint(0, 4, (5, 7, 3))  # [N, T, stoch] of 3 categoricals x 4 classes
    columns = index + torch.arange(3) * 4
    dense = torch.randn(5, 7, 6, requires_grad=True)
    feat = OneHotFeat(columns, dense, 12)
    full = torch.cat([torch.nn.functional.one_hot(index, 4).float().flatten(-2), dense], -1)  # [5, 7, 18]
    torch.testing.assert_close(feat.to_dense(), full)
    torch.testing.assert_close(feat[:, 2:].to_dense(), full[:, 2:])
    layer = torch.nn.Linear(18, 9)
    out = linear(layer, feat)
    torch.testing.assert_close(out, layer(full), atol=1e-6, rtol=1e-5)
    g_fast = torch.autograd.grad(out.square().sum(), [layer.weight, layer.bias, dense])
    g_plain = torch.autograd.grad(layer(full).square().sum(), [layer.weight, layer.bias, dense])
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_one_hot_feat_linear_passes_the_straight_through_gradient_to_its_one_hots():
    """With ``onehot`` (straight-through one-hots that carry gradient) the gathered layer's
    output, the weight's gradient and the gradient to the probabilities behind the one-hots
    equal those of the dense product over the same one-hots."""
    from dreamer2.distributions import OneHotDist
    from dreamer2.nets import OneHotFeat, linear
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 4, requires_grad=True)  # [N, stoch, classes]
    dist = OneHotDist(logits)
    index = dist.sample_index()
    onehot = dist.straight_through(index).flatten(-2)  # [5, 12]
    dense = torch.randn(5, 6, requires_grad=True)
    feat = OneHotFeat(index + torch.arange(3) * 4, dense, 12, onehot)
    layer = torch.nn.Linear(18, 9)
    torch.testing.assert_close(feat.to_dense(), torch.cat([onehot, dense], -1))
    target = torch.randn(5, 9)
    fast, plain = linear(layer, feat), layer(feat.to_dense())
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
    inputs = [logits, dense, layer.weight, layer.bias]
    g_fast = torch.autograd.grad((fast - target).square().sum(), inputs, retain_graph=True)  # shares the one-hots
    g_plain = torch.autograd.grad((plain - target).square().sum(), inputs)
    assert g_plain[0].abs().sum() > 0
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_sliced_once_gives_the_per_call_sums_and_gradients_of_a_recurring_layer():
    """Inside ``sliced_once`` a layer applied at every step (the actor in imagination) reads its
    one-hot table and other columns as sliced on entry: outputs and weight gradients over three
    steps equal those of slicing at each call, and the slices are gone on leaving."""
    from dreamer2.nets import OneHotFeat, linear, sliced_once
    torch.manual_seed(0)
    layer = torch.nn.Linear(18, 9)
    feats = [OneHotFeat(torch.randint(0, 4, (5, 3)) + torch.arange(3) * 4, torch.randn(5, 6), 12) for _ in range(3)]
    runs = []
    for once in (False, True):
        layer.zero_grad()
        with sliced_once(layer, 12) if once else torch.enable_grad():
            assert ("onehot_slices" in vars(layer)) == once
            outs = [linear(layer, f) for f in feats]
        assert "onehot_slices" not in vars(layer)
        sum(o.square().sum() for o in outs).backward()
        runs.append((outs, layer.weight.grad.clone(), layer.bias.grad.clone()))
    (outs, weight, bias), (outs_once, weight_once, bias_once) = runs
    for a, b in zip(outs, outs_once):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(weight, weight_once, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(bias, bias_once, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(outs[0], layer(feats[0].to_dense()), atol=1e-6, rtol=1e-5)


def test_one_hot_table_is_cached_without_gradient_and_follows_weight_updates():
    """Acting reuses the transposed one-hot block of a layer's weight; the agent's optimizer step
    (an in-place update, by a fused kernel) must make it fresh, or the policy would act with
    stale weights."""
    from dreamer2.agent import Optimizer
    from dreamer2.nets import OneHotFeat, linear
    torch.manual_seed(0)
    index = torch.randint(0, 4, (5, 3))
    feat = OneHotFeat(index + torch.arange(3) * 4, torch.randn(5, 6), 12)
    layer = torch.nn.Linear(18, 9)
    opt = Optimizer("test", layer, make_config("debug", {"model_opt.lr": 0.1, "model_opt.warmup": 0}).model_opt)
    for _ in range(2):
        with torch.no_grad():
            out, table = linear(layer, feat), layer._onehot_table[1]
            torch.testing.assert_close(out, layer(feat.to_dense()), atol=1e-6, rtol=1e-5)
            assert linear(layer, feat) is not None and layer._onehot_table[1] is table  # reused
        out = linear(layer, feat)  # with gradient: through the weight, no cache
        assert out.grad_fn is not None
        opt.step(out.square().sum())
        assert layer.weight.grad[:, :12].abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(linear(layer, feat), layer(feat.to_dense()), atol=1e-6, rtol=1e-5)


def test_obs_step_without_resets_keeps_the_columns_and_the_posterior():
    torch.manual_seed(0)
    rssm = RSSM(action_dim=2, embed_dim=5, deter=8, hidden=8, stoch=4, discrete=3)
    state = rssm.img_step(rssm.initial(6, "cpu"), torch.zeros(6, 2))
    action, embed = torch.randn(6, 2), torch.randn(6, 5)
    with torch.no_grad():
        dense, _ = rssm.obs_step(state, action, embed, torch.zeros(6), sample=False, with_prior=False)
        gathered, _ = rssm.obs_step(state, action, embed, torch.zeros(6), sample=False, with_prior=False,
                                    resets=False)
    assert "_onehot_table" in vars(rssm.img_in[0])  # the input layer gathered the columns
    for key in dense:
        torch.testing.assert_close(gathered[key], dense[key], atol=1e-6, rtol=1e-5)


def test_sampled_states_name_their_one_hot_columns():
    torch.manual_seed(0)
    rssm = RSSM(action_dim=2, embed_dim=5, deter=8, hidden=8, stoch=4, discrete=3)
    state = rssm.img_step(rssm.initial(6, "cpu"), torch.zeros(6, 2))
    with torch.no_grad():
        gathered = rssm.feat(state, gather=True)
    torch.testing.assert_close(gathered.to_dense(), rssm.feat(state))
    # A reset state is zeros, not one-hot: the next step must not read columns from it.
    post, _ = rssm.obs_step(state, torch.zeros(6, 2), torch.randn(6, 5), torch.ones(6))
    assert torch.equal(post["deter"], rssm.obs_step(rssm.initial(6, "cpu"), torch.zeros(6, 2), torch.randn(6, 5),
                                                    torch.zeros(6))[0]["deter"])


def test_obs_step_without_prior_gives_the_same_posterior():
    # Acting skips the prior's head; the posterior must not change.
    rssm = _rssm()
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) for k, v in rssm.initial(4, "cpu").items()}
    action, embed, is_first = torch.randn(4, 2), torch.randn(4, 8), torch.tensor([1.0, 0.0, 0.0, 0.0])
    post, prior = rssm.obs_step(state, action, embed, is_first, sample=False)
    fast, none = rssm.obs_step(state, action, embed, is_first, sample=False, with_prior=False)
    assert none is None and prior is not None
    assert post.keys() == fast.keys()
    for key in post:
        assert torch.equal(post[key], fast[key]), key


def test_img_step_columns_only_is_the_same_step_without_the_one_hots():
    # Imagination with REINFORCE gradients reads a sample's columns alone: the step must be the
    # same draw from the same state, and the next step from it the same too.
    torch.manual_seed(0)
    rssm = RSSM(action_dim=2, embed_dim=5, deter=8, hidden=8, stoch=4, discrete=3)
    start = rssm.img_step(rssm.initial(6, "cpu"), torch.zeros(6, 2))
    action = torch.randn(6, 2)
    steps = []
    with torch.no_grad():
        for columns_only in (False, True):
            torch.manual_seed(1)
            state = rssm.img_step(start, action, columns_only=columns_only)
            steps.append((state, rssm.img_step(state, action, columns_only=columns_only)))
    (full, full_next), (short, short_next) = steps
    assert full.keys() - short.keys() == {"stoch"} and short.keys() <= full.keys()
    assert torch.equal(full["stoch"].argmax(-1) + torch.arange(4) * 3, short["columns"])
    for key in short:
        assert torch.equal(short[key], full[key]) and torch.equal(short_next[key], full_next[key]), key


def test_layer_norm_gru_cell_is_the_reference_cell():
    """The reference's cell: gates from LayerNorm over one Linear of [input, state]; reset r,
    candidate tanh(r * c), update u = sigma(u' - 1), and the state u * cand + (1 - u) * state.
    Values and every gradient, against that formula written out."""
    from dreamer2.nets import LayerNormGRUCell
    torch.manual_seed(0)
    cell = LayerNormGRUCell(3, 4)
    with torch.no_grad():
        cell.norm.weight.uniform_(0.5, 1.5), cell.norm.bias.uniform_(-0.5, 0.5)
    x, state = torch.randn(5, 3, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    out = cell(x, state)
    parts = torch.nn.functional.layer_norm(torch.cat([x, state], -1) @ cell.linear.weight.t(), (12,),
                                           cell.norm.weight, cell.norm.bias, 1e-3)
    reset, cand, update = torch.sigmoid(parts[:, :4]), parts[:, 4:8], torch.sigmoid(parts[:, 8:] - 1)
    expected = update * torch.tanh(reset * cand) + (1 - update) * state
    torch.testing.assert_close(out, expected)
    grad = torch.randn(5, 4)
    inputs = (x, state, cell.linear.weight, cell.norm.weight, cell.norm.bias)
    for a, b in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)):
        torch.testing.assert_close(a, b)
