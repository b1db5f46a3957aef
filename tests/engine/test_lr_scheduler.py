"""SlowFast lr policies at hand-computed epochs; the per-iteration scheduler and its resume."""
import math

import pytest
import torch

from mvit_tasks.engine.lr_scheduler import LRScheduler, lr_at

# SlowFast configs/Kinetics/MVITv2_S_16x4.yaml (BASE_LR 1e-4 here): cosine after a 30-epoch warm-up
MVIT = dict(policy="cosine", base_lr=1e-4, max_epoch=200, cosine_end_lr=1e-6,
            cosine_after_warmup=True, warmup_epochs=30, warmup_start_lr=1e-6)


@pytest.mark.parametrize("epoch, expected", [
    (0.0, 1e-6),
    (15.0, 5.05e-5),        # 1e-6 + 15 * (1e-4 - 1e-6) / 30
    (30.0, 1e-4),           # warm-up ends at the cosine's start: continuous
    (115.0, 5.05e-5),       # (115 - 30) / 170 = 1/2 of the cosine
    (200.0, 1e-6),
    (72.5, 1e-6 + 9.9e-5 * 0.5 * (1 + math.cos(math.pi / 4))),  # a quarter of the cosine
])
def test_cosine_after_warmup(epoch, expected):
    assert lr_at(epoch, **MVIT) == pytest.approx(expected, rel=1e-12, abs=0)


def test_cosine_with_warmup_inside_the_cosine():
    """SlowFast default (COSINE_AFTER_WARMUP False): warm-up ends at cosine(30) < base lr."""
    cfg = dict(MVIT, cosine_after_warmup=False)
    end = 1e-6 + 9.9e-5 * 0.5 * (1 + math.cos(0.15 * math.pi))
    assert end == pytest.approx(9.460482e-05, rel=1e-6)
    assert lr_at(30.0, **cfg) == pytest.approx(end, rel=1e-12)
    assert lr_at(10.0, **cfg) == pytest.approx(1e-6 + 10 * (end - 1e-6) / 30, rel=1e-12)
    assert lr_at(10.0, **cfg) == pytest.approx(3.220161e-05, rel=1e-6)
    assert lr_at(100.0, **cfg) == pytest.approx(1e-6 + 9.9e-5 * 0.5, rel=1e-12)
    # fractional epochs: iteration 3 of 10 in epoch 29 lies on the warm-up line
    assert lr_at(29.3, **cfg) == pytest.approx(1e-6 + 29.3 * (end - 1e-6) / 30, rel=1e-12)


def test_steps_with_relative_lrs():
    """SlowFast configs/Kinetics/SLOWFAST_8x8_R50_stepwise.yaml."""
    cfg = dict(policy="steps_with_relative_lrs", base_lr=0.1, max_epoch=196,
               steps=[0, 94, 154, 196],
               lrs=[1, 0.1, 0.01, 0.001], warmup_epochs=34, warmup_start_lr=0.01)
    assert lr_at(10.0, **cfg) == pytest.approx(0.01 + 10 * 0.09 / 34, rel=1e-12)  # 0.0364706
    assert lr_at(34.0, **cfg) == pytest.approx(0.1)
    assert lr_at(93.99, **cfg) == pytest.approx(0.1)
    assert lr_at(94.0, **cfg) == pytest.approx(0.01)
    assert lr_at(154.0, **cfg) == pytest.approx(0.001)
    assert lr_at(196.0, **cfg) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="must start at 0"):
        lr_at(1.0, **dict(cfg, steps=[1, 94, 154, 196]))
    with pytest.raises(ValueError, match="equal length"):
        lr_at(1.0, **dict(cfg, lrs=[1, 0.1]))


def test_constant_and_errors():
    assert lr_at(0.5, "constant", 0.2, 10, warmup_epochs=1) == pytest.approx(0.1)
    assert lr_at(7.0, "constant", 0.2, 10, warmup_epochs=1) == 0.2
    with pytest.raises(ValueError, match="LR_POLICY"):
        lr_at(0.0, "linear", 0.1, 10)
    with pytest.raises(ValueError, match="outside the schedule"):
        lr_at(10.5, **dict(MVIT, max_epoch=10, warmup_epochs=1))
    with pytest.raises(ValueError, match="COSINE_END_LR"):
        lr_at(0.0, **dict(MVIT, cosine_end_lr=1.0))


def test_scheduler_sets_scaled_lrs_per_iteration_and_resumes_statelessly():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]

    def groups():
        return [{"params": [params[0]], "lr_scale": 0.25}, {"params": [params[1]]}]

    opt = torch.optim.SGD(groups(), lr=1.0)
    sched = LRScheduler(opt, **MVIT)
    iters_per_epoch = 4
    lrs = []
    for it in range(8):  # epochs 0 .. 2 by iteration
        lr = sched.step(it / iters_per_epoch)
        lrs.append(lr)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * lr, rel=1e-15)
        assert opt.param_groups[1]["lr"] == lr
    assert lrs[1] == pytest.approx(1e-6 + 0.25 * 9.9e-5 / 30, rel=1e-12)
    assert all(b > a for a, b in zip(lrs, lrs[1:]))
    state = sched.state_dict()
    assert state["last_epoch"] == 7 / 4

    opt2 = torch.optim.SGD(groups(), lr=1.0)
    resumed = LRScheduler(opt2, **MVIT)
    resumed.load_state_dict(state)
    assert resumed.get_last_lr() == sched.get_last_lr()
    assert resumed.step(2.0) == sched.step(2.0)
    with pytest.raises(ValueError, match="LR_POLICY"):
        LRScheduler(opt, "cosinus", 0.1, 10)
