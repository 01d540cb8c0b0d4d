"""Network building blocks of DreamerV2: MLP, CNN encoder, transposed-CNN decoder, LayerNorm GRU.

Layer sizes follow the reference implementation: ELU activations, 'valid' convolutions of
stride 2 whose depth doubles per layer, and a decoder that starts from a 1x1 feature map.
Every ELU works in place: its input is a layer's output that nothing else reads, and its
backward needs only its own output, so no second copy of each activation is written and kept.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def init_like_reference(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every dense and convolutional layer, the
    Keras defaults the reference trains with (PyTorch's default init is narrower)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


use_onednn_linear = True  # False: every Linear is F.linear (MKL's sgemm), e.g. to compare


def cpu_fp32(x: torch.Tensor) -> bool:
    """Whether ``x`` is computed in fp32 on a CPU outside autocast: where this module's choices of
    CPU kernels (``dense``, ``transposed_conv``) were measured to pay."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; on a CPU in fp32, a product of at least 2^28 multiply-adds
    runs forward as oneDNN's 1x1 convolution over the rows.

    Behind F.linear, MKL's sgemm ran this model's products at ~145 GFLOP/s on a 2-core AMD Zen 2,
    where oneDNN's 1x1-convolution kernel runs the same ones at ~185 (the GRU's [800, 1200] x
    [1200, 1800]: 18.6 against 24.0 ms). Below ~2^28 its per-call costs (the weight's reorder, a
    Python autograd function) eat the gain: [800, 400] x [400, 400] and its ELU took the same time
    either way. The backward stays F.linear's two GEMMs (oneDNN's convolution backward was
    slower). The same sums in another order (tested); ``use_onednn_linear`` switches it off.
    """
    rows = x.numel() // max(x.shape[-1], 1)
    steps = getattr(weight, "sequence_steps", None)  # set by ``SequenceWeights``
    if steps is not None and torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
        out = _StepDense.apply(x.reshape(rows, x.shape[-1]), weight, bias, steps)
        return out.reshape(*x.shape[:-1], weight.shape[0])
    if not use_onednn_linear or not cpu_fp32(x) or rows * weight.numel() < 2 ** 28:
        return F.linear(x, weight, bias)
    return _RowsConv.apply(x.reshape(rows, x.shape[-1]), weight, bias, x.shape[:-1])


class _RowsConv(torch.autograd.Function):
    """``rows @ weight.T + bias`` as a 1x1 convolution of a 1 x rows image (see ``dense``), shaped
    ``[*lead, out]``."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                lead: torch.Size) -> torch.Tensor:
        rows = rows.contiguous()  # [M, K]: read as channels_last [1, K, M, 1], no copy
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None
        m, k = rows.shape
        out = F.conv2d(rows.view(1, m, 1, k).permute(0, 3, 1, 2), weight[:, :, None, None], bias)
        out = out.permute(0, 2, 3, 1).contiguous()  # [1, M, 1, N]: a view where oneDNN wrote channels_last
        # Not a view for autograd (as reshape's copies are not), so the next layer may work in place.
        return torch.ops.aten._unsafe_view(out, (*lead, weight.shape[0]))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, weight = ctx.saved_tensors
        grad = grad.reshape(rows.shape[0], weight.shape[0])
        grad_rows, grad_bias = _rows_and_bias_grads(ctx, grad, weight)
        grad_weight = grad.t() @ rows if ctx.needs_input_grad[1] else None
        return grad_rows, grad_weight, grad_bias, None


def _rows_and_bias_grads(ctx, grad: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The input rows' and the bias's gradients of ``rows @ weight.T + bias`` (inputs 0 and 2 of
    ``_RowsConv`` and ``_StepDense``), where they are needed."""
    grad_rows = grad @ weight if ctx.needs_input_grad[0] else None
    grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_rows, grad_bias


# Weights of at least this many entries (1 MiB in fp32) take ``SequenceWeights``' path. Below it
# the per-step adds it saves are cheap (the weight gradient stays in a core's L2) and its Python
# autograd functions cost more: with every weight deferred, the observe loop took 1.07x as long at
# the small preset and 1.03x at dmc_vision.
sequence_min_size = 2 ** 18


class SequenceWeights:
    """Weight gradients of the Linear layers of a recurrence, computed once per sequence.

    A layer applied at each of T steps gets T weight gradients ``grad_t.T @ x_t``: T thin GEMMs
    (16 rows each in the atari observe loop), each added by autograd into the running sum, a pass
    over the whole weight gradient per step (the GRU's is 1800 x 1200, the crafter preset's 3072 x
    2048). Inside ``with SequenceWeights(layers) as seq:`` those layers, and weights passed through
    ``seq.weight``, keep each step's ``grad_t`` and ``x_t`` instead, and the weight gradient is
    one GEMM over all the steps' rows when the backward reaches the weight: the same sum in
    another order (tested). The observe loop's forward and backward took 258 against 291 ms at the
    atari preset and 703 against 971 ms at crafter (Intel Xeon, medians of 16 and 10 interleaved).

    Only weights of at least ``sequence_min_size`` entries, and only in fp32 with gradients on
    (under autocast or no_grad the layers work as usual). The steps' pairs are kept per backward
    pass (autograd's graph task), so a backward that skips the weights (``autograd.grad`` of the
    inputs alone) leaves nothing for a later one to count twice.
    """

    def __init__(self, layers: list[nn.Linear]):
        self.layers = [layer for layer in layers if layer.weight.numel() >= sequence_min_size]

    def weight(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` (e.g. a slice of a layer's) as a tensor whose products in ``dense`` leave
        their weight gradient to the end of the sequence's backward."""
        if weight.numel() < sequence_min_size:
            return weight
        steps: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        alias = _SequenceWeight.apply(weight, steps)
        alias.sequence_steps = steps
        return alias

    def __enter__(self) -> "SequenceWeights":
        for layer in self.layers:
            layer.sequence_weight = self.weight(layer.weight)
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            del layer.sequence_weight


class _SequenceWeight(torch.autograd.Function):
    """Forward, the weight itself; backward, the weight gradient of all the steps that used it:
    one GEMM of their stacked output gradients and inputs (kept by ``_StepDense``), plus any
    gradient that reached it the usual way."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, steps: dict) -> torch.Tensor:
        ctx.steps = steps
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        pairs = ctx.steps.pop(torch._C._current_graph_task_id(), [])
        if pairs:
            summed = torch.cat([g for g, _ in pairs]).t() @ torch.cat([x for _, x in pairs])
            grad = summed if grad is None else grad + summed
        return grad, None


class _StepDense(torch.autograd.Function):
    """``F.linear`` of one step's rows whose backward returns the input's and bias's gradients
    and leaves the weight's to ``_SequenceWeight`` (its pair kept in ``steps``)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, steps: dict) -> torch.Tensor:
        ctx.save_for_backward(rows, weight)
        ctx.steps, ctx.has_bias = steps, bias is not None
        return F.linear(rows, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, weight = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            ctx.steps.setdefault(torch._C._current_graph_task_id(), []).append((grad, rows))
        grad_rows, grad_bias = _rows_and_bias_grads(ctx, grad, weight)
        return grad_rows, None, grad_bias, None


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) computed by ``dense``; inside
    ``SequenceWeights`` it reads the weight through the sequence's alias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense(x, self.__dict__.get("sequence_weight", self.weight), self.bias)


@dataclass(frozen=True)
class OneHotFeat:
    """Features ``[one-hot block, dense]`` with the one-hot block kept as the columns it sets.

    The RSSM's features start with 32 one-hot categoricals of 32 classes: 1,024 inputs of which
    32 are ones. A Linear layer over them is a sum of the 32 weight columns they pick, so
    ``linear`` gathers those (``embedding_bag``) instead of multiplying 992 zeros: the same sum,
    ~2-6x faster forward on a CPU, and a weight gradient that touches only the picked columns.
    Where the one-hots carry a straight-through gradient (dynamics gradients, the observe
    loop), ``onehot`` holds them and ``linear`` passes them the dense product's gradient.
    """
    columns: torch.Tensor  # [..., S] long: the column of each categorical's class (s * classes + class)
    dense: torch.Tensor  # [..., R]: the features after the one-hot block
    width: int  # S * classes: the one-hot block's size
    onehot: torch.Tensor | None = None  # [..., width]: the straight-through one-hots, where gradient flows

    def __getitem__(self, key) -> "OneHotFeat":
        """Index the leading axes (e.g. ``feat[:, :-1]``); the feature axis stays whole."""
        return OneHotFeat(self.columns[key], self.dense[key], self.width,
                          None if self.onehot is None else self.onehot[key])

    def detach(self) -> "OneHotFeat":
        return OneHotFeat(self.columns, self.dense.detach(), self.width)

    def onehot_block(self) -> torch.Tensor:
        """The one-hot block [..., width]: ``onehot`` where it is kept, else made from the columns."""
        if self.onehot is not None:
            return self.onehot
        onehot = torch.zeros(*self.columns.shape[:-1], self.width, dtype=self.dense.dtype, device=self.dense.device)
        return onehot.scatter_(-1, self.columns, 1.0)

    def to_dense(self) -> torch.Tensor:
        return torch.cat([self.onehot_block(), self.dense], -1)


def stack_feat(feats: list[torch.Tensor] | list[OneHotFeat], dim: int) -> torch.Tensor | OneHotFeat:
    """``torch.stack`` for features, dense or ``OneHotFeat`` (all of one kind; a start state's
    one-hots carry no gradient, so where later ones do, its ``onehot`` is filled in as constants)."""
    if not isinstance(feats[0], OneHotFeat):
        return torch.stack(feats, dim)
    onehot = None
    if any(f.onehot is not None for f in feats):
        onehot = torch.stack([f.onehot_block() for f in feats], dim)
    return OneHotFeat(torch.stack([f.columns for f in feats], dim), torch.stack([f.dense for f in feats], dim),
                      feats[0].width, onehot)


class _StraightThrough(torch.autograd.Function):
    """Zeros forward; backward, the gradient ``grad @ W`` that ``onehot @ W.T`` passes to its
    one-hots. Added to the gathered sum it completes the dense product's gradients: the sum's
    value and the weight's gradient come from ``embedding_bag``, the one-hots' from here."""

    @staticmethod
    def forward(ctx, onehot: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # [N, width], [out, width]
        ctx.save_for_backward(weight)
        ctx.dtype = onehot.dtype
        return onehot.new_zeros(onehot.shape[0], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weight,) = ctx.saved_tensors
        return (grad.to(weight.dtype) @ weight).to(ctx.dtype), None


def onehot_table(layer: nn.Linear, width: int) -> torch.Tensor:
    """The one-hot block's weight columns as rows, ``[width, out]``, for ``embedding_bag``.

    Where no gradient reaches the weight (acting, evaluation) the copy is kept on the layer and
    made again only when the weight has changed (an optimizer step or a load bumps its
    ``_version``): at one env step a 1,024 x 600 copy costs more than the dense product it saves.
    """
    weight = layer.weight
    if torch.is_grad_enabled() and weight.requires_grad:
        return weight[:, :width].t().contiguous()  # in the graph: the weight's gradient flows
    if torch.compiler.is_compiling():  # a compiled acting step, whose caller made the copy current
        return layer._onehot_table[1]
    key = (weight.data_ptr(), weight._version, width, weight.dtype)
    cached = getattr(layer, "_onehot_table", None)
    if cached is None or cached[0] != key:
        cached = (key, weight.detach()[:, :width].t().contiguous())
        layer._onehot_table = cached
    return cached[1]


@contextmanager
def sliced_once(layer: nn.Linear, width: int) -> Iterator[None]:
    """Inside it, ``linear`` over a ``OneHotFeat`` of one-hot ``width`` reads ``layer``'s one-hot
    table and other columns as sliced once on entry, not once per call, where the weight gets a
    gradient.

    The actor runs at each of the 15 imagination steps with gradients on. Sliced per call, every
    step copies its [width, out] table, and autograd scatters each step's two weight gradients into
    a zeroed whole weight and adds those up; sliced once, the steps' gradients add up at the
    slices' sizes and are scattered into the weight once: the same sums.
    """
    weight = layer.weight
    if torch.is_grad_enabled() and weight.requires_grad:
        layer.onehot_slices = {width: (weight[:, :width].t().contiguous(), weight[:, width:])}
    try:
        yield
    finally:
        vars(layer).pop("onehot_slices", None)


def linear(layer: nn.Linear, x: torch.Tensor | OneHotFeat) -> torch.Tensor:
    """``layer(x)``, where a ``OneHotFeat`` reads only the weight columns its one-hots select."""
    if not isinstance(x, OneHotFeat):
        return layer(x)
    lead, slots = x.columns.shape[:-1], x.columns.shape[-1]
    # [width, out] (one row per one-hot column) and [out, rest]
    table, rest = vars(layer).get("onehot_slices", {}).get(x.width) or (onehot_table(layer, x.width),
                                                                         layer.weight[:, x.width:])
    columns = x.columns.reshape(-1, slots)
    if table.requires_grad and cpu_fp32(table):  # where it was measured (on a GPU, 32 kernels for one)
        picked = _Gather.apply(columns, table)
    else:
        picked = F.embedding_bag(columns, table, mode="sum")
    if x.onehot is not None:
        picked = picked + _StraightThrough.apply(x.onehot.reshape(-1, x.width), layer.weight[:, :x.width])
    return picked.reshape(*lead, -1) + dense(x.dense, rest, layer.bias)


class _Gather(torch.autograd.Function):
    """``embedding_bag(columns, table, mode="sum")`` [N, out] whose table gradient is added slot
    by slot: one ``index_add_`` of the N rows' gradients at each slot's columns. embedding_bag's
    own backward sorts all N * slots indices first: for 32 slots into [1024, 400] it took 4.8 ms
    at the actor's 800 rows and 71 ms at the critic's 12,000 (forward and backward), this 1.9 and
    40 (Intel Xeon, two threads). The same sums; their order within a row may differ. On a CPU in
    fp32 only, where it was measured."""

    @staticmethod
    def forward(ctx, columns: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(columns)
        ctx.table = table.shape, table.dtype
        return F.embedding_bag(columns, table.detach(), mode="sum")  # detached: the forward-only kernel

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (columns,), (shape, dtype) = ctx.saved_tensors, ctx.table
        grad = grad.to(dtype)
        table_grad = grad.new_zeros(shape)
        for slot in columns.unbind(-1):
            table_grad.index_add_(0, slot, grad)
        return None, table_grad


def mlp(inp: int, layers: int, units: int, norm: bool = False) -> nn.Sequential:
    """`layers` x (Linear -> [LayerNorm] -> ELU); the output layer is added by the caller."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules.append(Linear(inp, units, bias=not norm))
        if norm:
            modules.append(nn.LayerNorm(units, eps=1e-3))
        modules.append(nn.ELU(inplace=True))
        inp = units
    return nn.Sequential(*modules)


class MLPHead(nn.Module):
    """MLP trunk plus a linear output of `out` units (the parameters of a distribution)."""

    def __init__(self, inp: int, out: int, layers: int, units: int, norm: bool = False):
        super().__init__()
        self.trunk = mlp(inp, layers, units, norm)
        self.out = Linear(units if layers else inp, out)

    @property
    def first(self) -> nn.Linear:
        """The layer that reads the input."""
        return self.trunk[0] if len(self.trunk) else self.out

    def forward(self, x: torch.Tensor | OneHotFeat) -> torch.Tensor:
        if not len(self.trunk):
            return linear(self.out, x).float()
        return self.out(self.trunk[1:](linear(self.trunk[0], x))).float()  # distribution parameters stay fp32 under autocast


class ConvEncoder(nn.Module):
    """Stride-2 'valid' convolutions (kernels 4,4,4,4 by default): 64x64 -> 2x2 x 8*depth."""

    def __init__(self, channels: int, depth: int, kernels: list[int], size: tuple[int, int], norm: bool = False):
        super().__init__()
        in_channels = channels
        layers: list[nn.Module] = []
        for i, kernel in enumerate(kernels):
            out = depth * 2 ** i
            layers.append(nn.Conv2d(channels, out, kernel, stride=2, bias=not norm))
            if norm:
                layers.append(nn.GroupNorm(1, out, eps=1e-3))  # LayerNorm over channels and space
            layers.append(nn.ELU(inplace=True))
            channels = out
        # channels_last (NHWC) memory: the same convolutions, ~1.5x faster on CPU (oneDNN's native layout).
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, in_channels, *size)).numel())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [..., C, H, W] float in [-0.5, 0.5] -> [..., out_dim]."""
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).contiguous(memory_format=torch.channels_last)
        if x.device.type != "cpu":
            x = self.net(x)  # [N, 8*depth, h, w]
        else:
            for layer in self.net:
                x = conv_as_gemm(layer, x) if isinstance(layer, nn.Conv2d) and few_outputs(layer, x) else layer(x)
        return x.reshape(*lead, -1)  # [..., out_dim], flattened in (C, h, w) order as without channels_last


def few_outputs(conv: nn.Conv2d, x: torch.Tensor, most: int = 1024, per_image: int = 4) -> bool:
    """Whether a convolution has so few output positions that one GEMM of its patches beats
    oneDNN's convolution on a CPU: at most ``most`` in all, or at most ``per_image`` per image.

    In all: every layer of the 64x64 encoder when acting for one env (31x31, 14x14, 6x6, 2x2).
    oneDNN's convolution is slow at so few outputs (1.2 ms for 192x6x6 -> 384x2x2 at batch 1
    inside a policy step); with all four layers as GEMMs rather than the last alone the atari
    policy step took 5.35 against 5.61 ms (Zen 2, two threads, medians of 8 rounds).
    Per image: the encoder's last layer (2x2 outputs) in training, whose weight gradient oneDNN
    computes at ~60 GFLOP/s: at batch 800 (atari) forward and backward took 186 against 298 ms
    (Zen 2, two threads, medians of 5); the 6x6 and larger layers are faster in oneDNN."""
    oh, ow = _valid_output_size(conv, x)
    return _plain(conv) and (x.shape[0] * oh * ow <= most or oh * ow <= per_image)


def _plain(conv: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    """Whether a (transposed) convolution is unpadded, undilated and ungrouped: the layers that
    the GEMM forms below compute."""
    return (conv.padding == (0, 0) and conv.output_padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1)


def _valid_output_size(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, int]:
    """Output height and width of an unpadded convolution of ``x`` [N, C, H, W]."""
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    return (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1


def conv_as_gemm(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 'valid', undilated, ungrouped convolution of a channels_last input, as
    one GEMM of its patches: the same sums (in another order). The channels_last weight is
    [out, kh, kw, in] in memory, so it serves as the GEMM's matrix without a copy."""
    args = (_nhwc(x), conv.kernel_size, conv.stride, _valid_output_size(conv, x))
    patches = _Patches.apply(*args) if x.requires_grad else _patches(*args)  # acting: no autograd function
    out = dense(patches, _kernel_rows(conv.weight), conv.bias)  # [N, oh, ow, out]
    return out.permute(0, 3, 1, 2)  # [N, out, oh, ow], channels_last in memory


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] as [N, H, W, C] in contiguous memory: a view when x is channels_last."""
    return x.permute(0, 2, 3, 1).contiguous()


def _patches(nhwc: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The patches of a 'valid' convolution of ``nhwc`` [N, H, W, C] as rows [N, oh, ow, kh * kw * C] (a copy)."""
    n, c = nhwc.shape[0], nhwc.shape[3]
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, size
    sn, sy, sx, sc = nhwc.stride()
    return nhwc.as_strided((n, oh, ow, kh, kw, c), (sn, sh * sy, sw * sx, sy, sx, sc)).reshape(n, oh, ow, -1)


class _Patches(torch.autograd.Function):
    """``_patches``, whose backward adds the patches' gradients back at each of the kh * kw kernel
    offsets: one strided slice add per offset. Autograd's generic backward of the overlapping
    ``as_strided`` view builds an index of every patch entry and runs ``index_add_``: for the
    encoder's last layer at atari (800 x 6 x 6 x 192) 35 against 8 ms, and the same sums in the
    same order (the offsets run backwards, so each input's terms come in the order of the
    patches that read it), bitwise equal."""

    @staticmethod
    def forward(ctx, nhwc: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                size: tuple[int, int]) -> torch.Tensor:
        ctx.shape, ctx.kernel, ctx.stride, ctx.size = nhwc.shape, kernel, stride, size
        return _patches(nhwc, kernel, stride, size)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (kh, kw), (sh, sw), (oh, ow) = ctx.kernel, ctx.stride, ctx.size
        grad = grad.reshape(*grad.shape[:3], kh, kw, -1)  # [N, oh, ow, kh, kw, C]
        out = grad.new_zeros(ctx.shape)
        for y in reversed(range(kh)):
            for x in reversed(range(kw)):
                out[:, y:y + sh * (oh - 1) + 1:sh, x:x + sw * (ow - 1) + 1:sw] += grad[:, :, :, y, x]
        return out, None, None, None


class ConvDecoder(nn.Module):
    """Linear to 32*depth, read as a 1x1 map, then transposed convolutions (5,5,6,6): 1 -> 64.

    A stride-2 transposed convolution of a 1x1 map with kernel k is exactly a Linear layer to
    ``out * k * k`` units read as an ``out x k x k`` map, so the first one is computed that way:
    the same function as the reference's, as one GEMM instead of a slow convolution kernel.
    """

    def __init__(self, feat: int, channels: int, depth: int, kernels: list[int], norm: bool = False):
        super().__init__()
        self.linear = Linear(feat, 32 * depth)
        outs = [channels if i == len(kernels) - 1 else depth * 2 ** (len(kernels) - i - 2) for i in range(len(kernels))]
        self.first_shape = (outs[0], kernels[0], kernels[0])
        self.first = Linear(32 * depth, outs[0] * kernels[0] ** 2, bias=False)
        use_bias = len(kernels) == 1 or not norm
        self.first_bias = nn.Parameter(torch.zeros(outs[0])) if use_bias else None  # per channel, as the conv's
        layers: list[nn.Module] = []
        for i, kernel in enumerate(kernels):
            last = i == len(kernels) - 1
            if i > 0:
                layers.append(nn.ConvTranspose2d(outs[i - 1], outs[i], kernel, stride=2, bias=last or not norm))
            if not last:
                if norm:
                    layers.append(nn.GroupNorm(1, outs[i], eps=1e-3))
                layers.append(nn.ELU(inplace=True))
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)  # as the encoder: ~1.15x here

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat [..., F] -> image mean [..., C, H, W]."""
        lead = feat.shape[:-1]
        x = self.first(self.linear(feat)).reshape(-1, *self.first_shape)  # [N, 4*depth, 5, 5]
        x = x.contiguous(memory_format=torch.channels_last)  # a copy, which the bias may then change
        if self.first_bias is not None:
            x = x.add_(self.first_bias[:, None, None])
        for layer in self.net:
            is_conv = isinstance(layer, nn.ConvTranspose2d)
            x = transposed_conv(layer, x, output=layer is self.net[-1]) if is_conv else layer(x)
        x = x.float()  # [N, C, H, W]; fp32 likelihood
        return x.reshape(*lead, *x.shape[1:])


def transposed_conv(layer: nn.ConvTranspose2d, x: torch.Tensor, output: bool) -> torch.Tensor:
    """``layer(x)``; on a CPU in fp32, by the kernels measured fastest there for the decoder's
    layers: the same sums in another order (tested).

    The ``output`` layer (48 -> 1 channel at atari) runs forward as ``_OutputTransposedConv``: one
    GEMM, then its columns added into the output's stride phases. oneDNN computes it at ~14 GFLOP/s
    (186 ms at batch 800 on Zen 2) and PyTorch's own kernel (a GEMM, then col2im) at ~25: at batch
    800 46-49 against 102-109 ms, with 3 channels 132 against 198 ms (Intel Xeon, medians of 9); its
    backward stays oneDNN's. A hidden layer on a small map runs as GEMMs
    (``_SmallMapTransposedConv``). The others run oneDNN's transposed convolution without its bias,
    which is added afterwards in place (autograd sums its gradient): with the bias inside, oneDNN's
    forward took 205-249 against 139-178 ms for the 192 -> 96 layer at batch 800, and its weight
    gradient took longer too; the decoder's forward and backward at atari took 1778 against 1535 ms
    (Intel Xeon, two threads, medians of 15 interleaved)."""
    if not cpu_fp32(x):
        return layer(x)
    if output and _OutputTransposedConv.handles(layer):
        return _OutputTransposedConv.apply(x, layer.weight, layer.bias, layer.stride[0])
    if _SmallMapTransposedConv.handles(layer, x):
        return _SmallMapTransposedConv.apply(x, layer.weight, layer.bias, layer.stride)
    out = F.conv_transpose2d(x, layer.weight, None, layer.stride, layer.padding, layer.output_padding,
                             layer.groups, layer.dilation)
    return out if layer.bias is None else out.add_(layer.bias[:, None, None])


class _SmallMapTransposedConv(torch.autograd.Function):
    """An unpadded transposed convolution of a small input map (at most ``most`` positions per
    image: the decoder's 5x5 -> 13x13 layer) as GEMMs, the same sums in another order.

    Forward: one GEMM of the input's rows [N * H * W, in] by the kernel [in, kh * kw * out], whose
    columns for each kernel offset are added into the output at that offset (kh * kw strided
    adds over channels_last rows). Backward: the output gradient's patches [N * H * W, kh * kw *
    out], copied once, serve two GEMMs, for the input's gradient and the kernel's. oneDNN runs
    this layer at ~140 GFLOP/s both ways; at atari (192 -> 96, batch 800) forward 119 against
    130 ms and backward 181 against 223 ms (Intel Xeon, medians of 12 interleaved). At 13x13
    (96 -> 48) it lost: 481 against 244 ms forward, the adds then moving 36 passes over a
    [800, 30, 30, 48] output. The patches hold each output gradient entry once per window that
    reads it: at atari 192 MB, 3.7 times the gradient, until the backward ends."""

    @staticmethod
    def handles(layer: nn.ConvTranspose2d, x: torch.Tensor, most: int = 25) -> bool:
        return _plain(layer) and x.shape[2] * x.shape[3] <= most

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        n, c_in, h, w = x.shape
        c_out, kh, kw = weight.shape[1:]
        (sh, sw) = stride
        cols = torch.mm(_nhwc(x).view(-1, c_in), _kernel_rows(weight)).view(n, h, w, kh, kw, c_out)
        out = _channels_last_zeros(x, c_out, (h - 1) * sh + kh, (w - 1) * sw + kw)
        nhwc = out.permute(0, 2, 3, 1)  # _Patches.backward's adds, offsets in ascending order
        for y in range(kh):
            for z in range(kw):
                nhwc[:, y:y + sh * (h - 1) + 1:sh, z:z + sw * (w - 1) + 1:sw] += cols[:, :, :, y, z]
        return out if bias is None else out.add_(bias[:, None, None])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        n, c_in, h, w = x.shape
        c_out, kh, kw = weight.shape[1:]
        patches = _patches(_nhwc(grad), (kh, kw), ctx.stride, (h, w)).view(n * h * w, -1)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(patches, _kernel_rows(weight).t()).view(n, h, w, c_in).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            dw = torch.mm(_nhwc(x).view(-1, c_in).t(), patches).view(c_in, kh, kw, c_out).permute(0, 3, 1, 2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum((0, 2, 3))
        return dx, dw, db, None


def _channels_last_zeros(like: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """Zeros [N, channels, height, width] in channels_last memory, returned by the transposed
    convolutions above as they are (not as a view), so later layers may work on them in place."""
    return torch.empty(like.shape[0], channels, height, width, dtype=like.dtype, device=like.device,
                       memory_format=torch.channels_last).zero_()


def _kernel_rows(weight: torch.Tensor) -> torch.Tensor:
    """A kernel [a, b, kh, kw] as a matrix [a, kh * kw * b] (a view of a channels_last kernel): a
    convolution's [out, kh * kw * in], which multiplies its patches, or a transposed
    convolution's [in, kh * kw * out], which multiplies its input rows."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


class _OutputTransposedConv(torch.autograd.Function):
    """An unpadded transposed convolution of stride s whose kernel is a multiple of s (k = q * s),
    for a layer with few output channels, as one GEMM and k * k * out strided adds.

    Output pixel (s * m + p) receives input row (m - a) times kernel row (s * a + p), for a < q: so
    the GEMM's columns for kernel offset (a, p) add into output phase p shifted by a, each a plain
    [N, H, W] add with a long inner run. col2im walks the same columns pixel by pixel, which is
    what made PyTorch's kernel slow. The shifts run backwards: col2im (channels_last) walks the
    input positions in ascending order, so each output pixel gets its terms by descending kernel
    offset, and the outputs are bitwise the same. The backward is the one autograd gives
    PyTorch's kernel (oneDNN's convolution backward)."""

    @staticmethod
    def handles(layer: nn.ConvTranspose2d) -> bool:
        (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
        return _plain(layer) and sh == sw and kh % sh == 0 and kw % sw == 0

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.s = bias is not None, s
        n, c_in, h, w = x.shape
        c_out, qh, qw = weight.shape[1], weight.shape[2] // s, weight.shape[3] // s
        rows = _nhwc(x).view(-1, c_in)  # [N * H * W, in]
        cols = torch.mm(weight.reshape(c_in, -1).t(), rows.t()).view(c_out, qh, s, qw, s, n, h, w)
        out = _channels_last_zeros(x, c_out, (h + qh - 1) * s, (w + qw - 1) * s)
        phases = out.permute(0, 2, 3, 1).view(n, h + qh - 1, s, w + qw - 1, s, c_out)  # [N, m, p, m', p', out]
        for c in range(c_out):
            for a in reversed(range(qh)):
                for b in reversed(range(qw)):
                    for p in range(s):
                        for p2 in range(s):
                            phases[:, a:a + h, p, b:b + w, p2, c] += cols[c, a, p, b, p2]
        return out if bias is None else out.add_(bias[:, None, None])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s = ctx.s
        bias_sizes = [weight.shape[1]] if ctx.has_bias else None
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        dx, dw, db = torch.ops.aten.convolution_backward(grad, x, weight, bias_sizes, [s, s], [0, 0], [1, 1], True,
                                                         [0, 0], 1, mask)
        return dx, dw, db, None


class LayerNormGRUCell(nn.Module):
    """GRU cell of the reference: one Linear over [input, state] for all three gates,
    LayerNorm over the gate pre-activations, and an update gate biased towards keeping the
    state (sigma(u - 1)) so that the deterministic path starts out as a slow memory."""

    def __init__(self, inp: int, size: int, norm: bool = True):
        super().__init__()
        self.size = size
        self.linear = Linear(inp + size, 3 * size, bias=not norm)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.linear(torch.cat([x, state], -1)).float())  # [N, 3*size]; LayerNorm and state in fp32
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)
        return update * cand + (1 - update) * state
