"""Replacement layers for rank reduction, each built by a `from_*` classmethod (as
tensorly-torch does) out of standard Linear/Conv2d children, so later techniques can prune
or quantize the factors."""

from __future__ import annotations

import warnings

import torch
from torch import nn


def _svd(matrix: torch.Tensor, rank: int, solver: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = matrix.detach().float()
    randomized = solver == "randomized" or (solver == "auto" and rank < min(m.shape) // 4 and min(m.shape) > 256)
    if randomized:
        u, s, v = torch.svd_lowrank(m, q=min(rank + 8, min(m.shape)), niter=4)
        return u[:, :rank], s[:rank], v[:, :rank].T
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    return u[:, :rank], s[:rank], vh[:rank]


CONV_GEOMETRY = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                 "padding_mode")


def _keep_geometry(layer: nn.Module, conv: nn.Conv2d) -> None:
    """Model code that reads its conv's geometry keeps working on the factorized layer (Hugging
    Face MobileNetV2's TF-style "SAME" padding reads `stride`, `kernel_size`, `dilation`)."""
    for name in CONV_GEOMETRY:
        setattr(layer, name, getattr(conv, name))


class LowRankLinear(nn.Module):
    """W (out x in) ≈ (U √S)(√S Vᵀ): `second(first(x))`, r(in + out) (+ out) parameters."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features  # as the Linear it replaces
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, solver: str = "auto") -> LowRankLinear:
        layer = cls(linear.in_features, linear.out_features, rank, linear.bias is not None)
        u, s, vh = _svd(linear.weight, rank, solver)
        root = s.sqrt()
        with torch.no_grad():
            layer.first.weight.copy_((root[:, None] * vh).to(linear.weight.dtype))
            layer.second.weight.copy_((u * root).to(linear.weight.dtype))
            if linear.bias is not None:
                layer.second.bias.copy_(linear.bias)
        return layer.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class LowRankConv1x1(nn.Module):
    """A 1x1 convolution is a Linear over channels: the same SVD, as two 1x1 convs."""

    def __init__(self, conv: nn.Conv2d, rank: int) -> None:
        super().__init__()
        _keep_geometry(self, conv)
        self.first = nn.Conv2d(conv.in_channels, rank, 1, conv.stride, conv.padding, conv.dilation, bias=False)
        self.second = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, rank: int, solver: str = "auto") -> LowRankConv1x1:
        layer = cls(conv, rank)
        u, s, vh = _svd(conv.weight.flatten(1), rank, solver)
        root = s.sqrt()
        with torch.no_grad():
            layer.first.weight.copy_((root[:, None] * vh).reshape(rank, -1, 1, 1).to(conv.weight.dtype))
            layer.second.weight.copy_((u * root).reshape(-1, rank, 1, 1).to(conv.weight.dtype))
            if conv.bias is not None:
                layer.second.bias.copy_(conv.bias)
        return layer.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class TuckerConv2d(nn.Module):
    """Tucker-2: 1x1 (in → r_in), kxk core (r_in → r_out, original stride/padding), 1x1 (r_out → out)."""

    def __init__(self, conv: nn.Conv2d, r_out: int, r_in: int) -> None:
        super().__init__()
        _keep_geometry(self, conv)
        self.first = nn.Conv2d(conv.in_channels, r_in, 1, bias=False)
        self.core = nn.Conv2d(r_in, r_out, conv.kernel_size, conv.stride, conv.padding, conv.dilation, bias=False,
                              padding_mode=conv.padding_mode)
        self.last = nn.Conv2d(r_out, conv.out_channels, 1, bias=conv.bias is not None)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, r_out: int, r_in: int, solver: str = "auto") -> TuckerConv2d:
        """Tucker-2 by tensorly's HOOI (`partial_tucker`, SVD init) on torch tensors in float32;
        randomized SVDs for big kernels (ResNet's 512-channel 3x3: 1.3 s instead of 2.2 s, same error)."""
        import tensorly as tl
        from tensorly.decomposition import partial_tucker

        layer = cls(conv, r_out, r_in)
        weight = conv.weight.detach().float().cpu()
        randomized = solver == "randomized" or (solver == "auto" and min(weight.shape[:2]) > 256)
        with tl.backend_context("pytorch"):  # a context, not set_backend: other threads keep theirs
            (core, factors), _ = partial_tucker(weight, rank=[r_out, r_in], modes=[0, 1], init="svd", n_iter_max=50,
                                                random_state=0, svd="randomized_svd" if randomized else "truncated_svd")
        out_factor, in_factor = factors
        dtype = conv.weight.dtype
        with torch.no_grad():
            layer.first.weight.copy_(in_factor.T.reshape(r_in, -1, 1, 1).to(dtype))
            layer.core.weight.copy_(core.contiguous().to(dtype))
            layer.last.weight.copy_(out_factor.reshape(-1, r_out, 1, 1).to(dtype))
            if conv.bias is not None:
                layer.last.bias.copy_(conv.bias)
        return layer.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.core(self.first(x)))


class CPConv2d(nn.Module):
    """CP (rank R): pointwise in → R, depthwise kx1 and 1xk, pointwise R → out. Approximate
    even at high rank (CP has no closed form); fine-tuning usually follows."""

    def __init__(self, conv: nn.Conv2d, rank: int) -> None:
        super().__init__()
        _keep_geometry(self, conv)
        kh, kw = conv.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
        self.first = nn.Conv2d(conv.in_channels, rank, 1, bias=False)
        self.vertical = nn.Conv2d(rank, rank, (kh, 1), (sh, 1), (ph, 0), (dh, 1), groups=rank, bias=False)
        self.horizontal = nn.Conv2d(rank, rank, (1, kw), (1, sw), (0, pw), (1, dw), groups=rank, bias=False)
        self.last = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, rank: int) -> CPConv2d:
        import tensorly as tl
        from tensorly.decomposition import parafac

        layer = cls(conv, rank)
        with tl.backend_context("numpy"), warnings.catch_warnings():  # tensorly notes when a rank exceeds a mode's size; that is fine
            warnings.simplefilter("ignore", UserWarning)
            weights, (f_out, f_in, f_h, f_w) = parafac(conv.weight.detach().double().cpu().numpy(), rank=rank,
                                                       init="svd", n_iter_max=100, random_state=0)
        f_out = f_out * weights  # fold the CP weights into the output factor
        dtype = conv.weight.dtype
        with torch.no_grad():
            layer.first.weight.copy_(torch.from_numpy(f_in.T.copy()).reshape(rank, -1, 1, 1).to(dtype))
            layer.vertical.weight.copy_(torch.from_numpy(f_h.T.copy()).reshape(rank, 1, -1, 1).to(dtype))
            layer.horizontal.weight.copy_(torch.from_numpy(f_w.T.copy()).reshape(rank, 1, 1, -1).to(dtype))
            layer.last.weight.copy_(torch.from_numpy(f_out.copy()).reshape(-1, rank, 1, 1).to(dtype))
            if conv.bias is not None:
                layer.last.bias.copy_(conv.bias)
        return layer.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.horizontal(self.vertical(self.first(x))))
