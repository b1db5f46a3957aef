"""MixUp / CutMix math, label smoothing, soft-target loss, randomness sources."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.engine.mixup import (
    MixUp, cutmix_box, label_smoothed_targets, soft_target_cross_entropy,
)


def test_label_smoothing_values_are_exact():
    t = label_smoothed_targets(torch.tensor([0, 4, 2]), 5, eps=0.1)
    expected = torch.full((3, 5), 0.02)
    expected[0, 0] = expected[1, 4] = expected[2, 2] = 0.92  # 1 - 0.1 + 0.1 / 5
    assert torch.equal(t, expected)
    one_hot = label_smoothed_targets(torch.tensor([1]), 3)
    assert torch.equal(one_hot, torch.tensor([[0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        label_smoothed_targets(torch.tensor([5]), 5)
    with pytest.raises(ValueError, match="1-D integer"):
        label_smoothed_targets(torch.tensor([0.0]), 5)


def test_soft_target_cross_entropy_matches_torch_label_smoothing():
    logits, labels = torch.randn(6, 7), torch.randint(0, 7, (6,))
    t = label_smoothed_targets(labels, 7, eps=0.2)
    ref = F.cross_entropy(logits, labels, label_smoothing=0.2)
    torch.testing.assert_close(soft_target_cross_entropy(logits, t), ref, rtol=0, atol=1e-6)
    per = soft_target_cross_entropy(logits, t, reduction="none")
    assert per.shape == (6,)
    torch.testing.assert_close(soft_target_cross_entropy(logits, t, "sum"), per.sum())


class _FixedRng:
    def __init__(self, cy, cx):
        self.vals = [cy, cx]

    def integers(self, lo, hi):
        return self.vals.pop(0)


def test_cutmix_box_clipping_and_lam_correction():
    # lam 0.75 -> sqrt(0.25) = 0.5 -> 16 x 16 box on 32 x 32
    box, lam = cutmix_box(_FixedRng(16, 16), 32, 32, 0.75)
    assert box == (8, 24, 8, 24) and lam == 0.75
    box, lam = cutmix_box(_FixedRng(0, 3), 32, 32, 0.75)  # clipped at the top-left corner
    assert box == (0, 8, 0, 11) and lam == 1 - 8 * 11 / 1024
    box, lam = cutmix_box(_FixedRng(5, 7), 10, 20, 0.0)  # whole image: 10 x 20 around (5, 7)
    assert box == (0, 10, 0, 17) and lam == 1 - 10 * 17 / 200


def test_mixup_only_math_and_targets():
    x, y = torch.randn(4, 3, 2, 8, 8), torch.tensor([0, 1, 2, 3])
    x0 = x.clone()
    mix = MixUp(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=5,
                generator=torch.Generator().manual_seed(1))
    out, t = mix(x, y)
    lam = mix.last.lam
    assert not mix.last.cutmix and 0 < lam < 1
    assert torch.equal(x, x0)  # input untouched
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.flip(0))
    s = label_smoothed_targets(y, 5, 0.1)
    torch.testing.assert_close(t, lam * s + (1 - lam) * s.flip(0))
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert t[0, 0] == pytest.approx(lam * 0.92 + (1 - lam) * 0.02)
    assert t[0, 3] == pytest.approx(lam * 0.02 + (1 - lam) * 0.92)


def test_cutmix_video_box_shared_over_frames_and_lam_corrected():
    b, c, tt, h, w = 4, 3, 4, 16, 16
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, c, tt, h, w).clone()
    mix = MixUp(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=4,
                generator=torch.Generator().manual_seed(3))
    for _ in range(5):
        out, t = mix(x, torch.arange(4))
        d = mix.last
        assert d.cutmix
        y0, y1, x0, x1 = d.box
        changed = out != x  # every sample differs from its flipped partner here
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert torch.equal(changed, inside.expand(b, c, tt, h, w))  # same box, every frame/channel
        assert torch.equal(out[..., y0:y1, x0:x1], x.flip(0)[..., y0:y1, x0:x1])
        assert d.lam == pytest.approx(1 - inside.sum().item() / (h * w))
        assert t[0, 0] == pytest.approx(d.lam) and t[0, 3] == pytest.approx(1 - d.lam)


def test_images_odd_batches_and_no_mix_paths():
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([2, 0, 1])
    mix = MixUp(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=3,
                generator=torch.Generator().manual_seed(0))
    out, t = mix(x, y)
    torch.testing.assert_close(out[1], x[1])  # the middle sample is mixed with itself
    torch.testing.assert_close(t[1], label_smoothed_targets(y, 3, 0.1)[1])
    torch.testing.assert_close(t.sum(1), torch.ones(3))
    smooth = label_smoothed_targets(y, 3, 0.1)
    for kw in (dict(prob=0.0), dict(mixup_alpha=0.0, cutmix_alpha=0.0)):
        m = MixUp(**{**dict(num_classes=3), **kw})
        out, t = m(x, y)
        assert out is x and torch.equal(t, smooth) and m.last.lam == 1.0
    with pytest.raises(ValueError, match="float"):
        mix(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), y)
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        mix(x, torch.tensor([0, 1]))


def test_switch_prob_and_reproducible_randomness():
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    kinds = []
    mix = MixUp(0.8, 1.0, switch_prob=0.5, num_classes=2,
                generator=torch.Generator().manual_seed(0))
    for _ in range(400):
        mix(x, y)
        kinds.append(mix.last.cutmix)
    assert 0.4 < np.mean(kinds) < 0.6
    for switch, cutmix in ((1.0, True), (0.0, False)):
        m = MixUp(0.8, 1.0, switch_prob=switch, num_classes=2)
        for _ in range(5):
            m(x, y)
            assert m.last.cutmix is cutmix
    # the global torch RNG drives the draws when no generator is given
    lams = []
    for _ in range(2):
        torch.manual_seed(7)
        m = MixUp(0.8, 1.0, num_classes=2)
        lams.append([m(x, y)[1][0, 0].item() for _ in range(3)])
    assert lams[0] == lams[1] and len(set(lams[0])) == 3
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = MixUp(num_classes=2, generator=g1), MixUp(num_classes=2, generator=g2)
    for _ in range(3):
        assert torch.equal(a(x, y)[0], b(x, y)[0])
