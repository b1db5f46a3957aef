"""The attention core's backends against a written-out reference (SlowFast's semantics):
logits = (q * scale) k^T + q . R_t[d_t] + q . R_h[d_h] + q . R_w[d_w] on the grid tokens, none
for the cls row / column; values and gradients (q, k, v and the tables) must agree."""
import itertools

import pytest
import torch

from mvit_tasks.modeling.layers.attention_ops import attend, resolve_backend

BACKENDS = ("explicit", "sdpa", "sdpa_bias")


def _rows(q_size: int, k_size: int):
    """Table row of (i, j): the SlowFast distance with the grids rescaled to a common size."""
    qr, kr = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    return [[int(i * qr - j * kr + (k_size - 1) * kr) for j in range(k_size)]
            for i in range(q_size)]


def _reference(q, k, v, scale, q_thw, k_thw, rh, rw, rt, has_cls):
    """Loops over (query, key) grid positions; tables have length 2 * max - 1 (no resize)."""
    s = 1 if has_cls else 0
    logits = (q * scale) @ k.transpose(-2, -1)
    qpos = list(itertools.product(*(range(n) for n in q_thw)))
    kpos = list(itertools.product(*(range(n) for n in k_thw)))
    rows = [_rows(qs, ks) for qs, ks in zip(q_thw, k_thw)]
    bias = torch.zeros_like(logits)
    for i, (it, ih, iw) in enumerate(qpos):
        qi = q[:, :, s + i]
        for j, (jt, jh, jw) in enumerate(kpos):
            b = 0
            if rt is not None:
                b = b + (qi * rt[rows[0][it][jt]]).sum(-1)
            if rh is not None:
                b = b + (qi * rh[rows[1][ih][jh]]).sum(-1) + (qi * rw[rows[2][iw][jw]]).sum(-1)
            bias[:, :, s + i, s + j] = b
    return (logits + bias).softmax(-1) @ v


CASES = [  # q grid, k grid, spatial, temporal, cls
    ((2, 4, 4), (2, 2, 2), True, True, True),
    ((2, 4, 4), (2, 2, 2), True, True, False),
    ((1, 3, 5), (1, 3, 5), True, False, True),
    ((4, 2, 2), (2, 2, 2), False, True, True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("q_thw,k_thw,spatial,temporal,has_cls", CASES)
def test_every_backend_equals_the_reference_values_and_grads(backend, q_thw, k_thw, spatial,
                                                             temporal, has_cls):
    g = torch.Generator().manual_seed(0)
    b, nh, c = 2, 3, 8
    s = 1 if has_cls else 0
    nq, nk = s + q_thw[0] * q_thw[1] * q_thw[2], s + k_thw[0] * k_thw[1] * k_thw[2]

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    q, k, v = leaf(b, nh, nq, c), leaf(b, nh, nk, c), leaf(b, nh, nk, c)
    lh, lw = 2 * max(q_thw[1], k_thw[1]) - 1, 2 * max(q_thw[2], k_thw[2]) - 1
    rh, rw = (leaf(lh, c), leaf(lw, c)) if spatial else (None, None)
    rt = leaf(2 * max(q_thw[0], k_thw[0]) - 1, c) if temporal else None
    leaves = [t for t in (q, k, v, rh, rw, rt) if t is not None]
    scale = c ** -0.5

    ref = _reference(q, k, v, scale, q_thw, k_thw, rh, rw, rt, has_cls)
    ref_grads = torch.autograd.grad(ref.square().sum(), leaves)
    out = attend(q, k, v, scale=scale, q_thw=q_thw, k_thw=k_thw, rel_pos_h=rh, rel_pos_w=rw,
                 rel_pos_t=rt, has_cls=has_cls, backend=backend)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(out.square().sum(), leaves)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # the inference path of sdpa_bias writes the bias into one buffer
        again = attend(q, k, v, scale=scale, q_thw=q_thw, k_thw=k_thw, rel_pos_h=rh,
                       rel_pos_w=rw, rel_pos_t=rt, has_cls=has_cls, backend=backend)
    torch.testing.assert_close(again, ref.detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_tables_is_plain_scaled_attention(backend):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    want = ((q * 0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
    got = attend(q, k, v, scale=0.5, q_thw=(1, 1, 5), k_thw=(1, 1, 5), backend=backend)
    torch.testing.assert_close(got, want)


def test_auto_picks_by_device_and_unknown_backends_are_refused():
    x = torch.zeros(1)
    assert resolve_backend("auto", x) == "explicit"
    assert resolve_backend("sdpa", x) == "sdpa"
    with pytest.raises(ValueError, match="attention backend must be one of"):
        resolve_backend("flash", x)
