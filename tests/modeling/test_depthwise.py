"""The fast CPU backward of the depthwise pooling conv equals autograd of ``F.conv{2,3}d``."""
import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.modeling.layers.depthwise import depthwise_conv_nd

CASES = [  # batch, channels, spatial size, kernel, stride, padding
    (1, 6, (4, 9, 9), (3, 3, 3), (1, 1, 1), (1, 1, 1)),
    (2, 5, (4, 9, 10), (3, 3, 3), (1, 2, 2), (1, 1, 1)),
    (2, 4, (3, 17, 16), (3, 3, 3), (1, 4, 4), (1, 1, 1)),
    (1, 3, (4, 16, 16), (3, 3, 3), (2, 8, 8), (1, 1, 1)),
    (2, 4, (3, 7, 7), (1, 3, 3), (1, 1, 1), (0, 1, 1)),
    (2, 4, (3, 7, 7), (3, 3, 3), (1, 1, 1), (0, 0, 0)),
    (2, 4, (9, 8), (3, 3), (1, 1), (1, 1)),
    (1, 4, (17, 16), (3, 3), (4, 4), (1, 1)),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("b,c,size,kernel,stride,padding", CASES)
def test_values_and_gradients_equal_autograd_of_the_plain_conv(b, c, size, kernel, stride,
                                                               padding, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, *size, generator=g, dtype=torch.float64)
    if channels_last and x.dim() == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    w = torch.randn(c, 1, *kernel, generator=g, dtype=torch.float64)
    x.requires_grad_(), w.requires_grad_()
    conv = F.conv3d if x.dim() == 5 else F.conv2d
    ref = conv(x, w, None, stride, padding, 1, c)
    out = depthwise_conv_nd(x, w, stride, padding)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    gout = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    want = torch.autograd.grad(ref, (x, w), gout)
    got = torch.autograd.grad(out, (x, w), gout)
    for a, e in zip(got, want):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_bf16_autocast_runs_in_bf16_and_returns_float32_weight_grads():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 4, 12, 12, generator=g).requires_grad_()
    w = torch.randn(8, 1, 3, 3, 3, generator=g).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv_nd(x, w, (1, 1, 1), (1, 1, 1))
        ref = F.conv3d(x, w, None, 1, 1, 1, 8)
    assert y.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref)
    y.float().sum().backward()
    assert w.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    w64, x64 = w.detach().double().requires_grad_(), x.detach().double().requires_grad_()
    F.conv3d(x64, w64, None, 1, 1, 1, 8).sum().backward()
    torch.testing.assert_close(w.grad.double(), w64.grad, rtol=2e-2, atol=2e-1)


def test_mixed_dtypes_without_autocast_are_refused():
    x = torch.randn(1, 2, 3, 5, 5, requires_grad=True)
    with pytest.raises(TypeError, match="differ"):
        depthwise_conv_nd(x, torch.randn(2, 1, 3, 3, 3, dtype=torch.float64), (1, 1, 1), (1, 1, 1))


@pytest.mark.parametrize("method", ["conv", "taps", "aten"])
def test_every_weight_gradient_method_equals_autograd(method, monkeypatch):
    """Each form the backward may pick by dtype, forced on float64 so it is compared exactly."""
    import mvit_tasks.modeling.layers.depthwise as dw

    monkeypatch.setattr(dw, "_weight_grad_method", lambda dtype, stride: method)
    g = torch.Generator().manual_seed(2)
    for b, c, size, kernel, stride, padding in CASES:
        if method == "conv" and any(s != 1 for s in stride):
            continue
        x = torch.randn(b, c, *size, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(c, 1, *kernel, generator=g, dtype=torch.float64, requires_grad=True)
        conv = F.conv3d if x.dim() == 5 else F.conv2d
        ref = conv(x, w, None, stride, padding, 1, c)
        gout = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        want = torch.autograd.grad(ref, w, gout)[0]
        got = torch.autograd.grad(depthwise_conv_nd(x, w, stride, padding), w, gout)[0]
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_padding_beyond_the_kernel_takes_the_plain_backward(monkeypatch):
    """``padding > k - 1`` does not fit the flipped-kernel data gradient: the plain conv runs
    (the custom Function is not used) and the gradients are still autograd's."""
    from mvit_tasks.modeling.layers import depthwise

    def refuse(*args):
        raise AssertionError("the custom backward was used")

    monkeypatch.setattr(depthwise._DepthwiseConv, "apply", refuse)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = depthwise_conv_nd(x, w, (2, 2), (3, 3))
    ref = F.conv2d(x, w, None, (2, 2), (3, 3), 1, 3)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, w))
    rx, rw = torch.autograd.grad(ref.square().sum(), (x, w))
    torch.testing.assert_close((gx, gw), (rx, rw))
