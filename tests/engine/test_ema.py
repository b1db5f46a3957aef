"""ModelEMA: closed-form averages, warm-up, buffers, swapping weights in, exact resume."""
import pytest
import torch
from torch import nn

from mvit_tasks.engine.ema import ModelEMA


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _set_weights(model: nn.Module, k: int) -> dict:
    """Deterministic 'training step' k: new weights, returned as float64 copies."""
    g = torch.Generator().manual_seed(100 + k)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return {n: p.detach().double().clone() for n, p in model.named_parameters()}


def _closed_form(ws, decays):
    """ema_N = prod(d) w_0 + sum_k (1 - d_k) prod_{j > k} d_j w_k (float64)."""
    out = {}
    for name in ws[0]:
        total = ws[0][name] * torch.tensor(decays, dtype=torch.float64).prod()
        for k in range(1, len(ws)):
            tail = torch.tensor(decays[k:], dtype=torch.float64).prod()  # d_{k+1} ... d_N
            total = total + (1 - decays[k - 1]) * tail * ws[k][name]
        out[name] = total
    return out


@pytest.mark.parametrize("warmup, decay", [(False, 0.9), (True, 0.4)])
def test_ema_equals_closed_form_weighted_average(warmup, decay):
    model = _model()
    ws = [_set_weights(model, 0)]
    ema = ModelEMA(model, decay=decay, warmup=warmup)
    for k in range(1, 8):
        ws.append(_set_weights(model, k))
        ema.update(model)
    decays = [ema.decay_at(n) for n in range(1, 8)]
    if warmup:
        # (1 + n) / (10 + n) until it reaches the decay (n = 5: 6 / 15 = 0.4)
        assert decays == pytest.approx([2 / 11, 3 / 12, 4 / 13, 5 / 14, 0.4, 0.4, 0.4])
    else:
        assert decays == [0.9] * 7
    expected = _closed_form(ws, decays)
    for name, value in expected.items():
        assert ema.shadow[name].dtype == torch.float32
        torch.testing.assert_close(ema.shadow[name].double(), value, rtol=0, atol=1e-6)
    assert ema.num_updates == 7


def test_buffers_copied_or_averaged():
    model = _model().train()
    ema_copy = ModelEMA(model, decay=0.5)
    ema_avg = ModelEMA(model, decay=0.5, average_buffers=True)
    rm0 = model[1].running_mean.clone()
    model(torch.randn(8, 3))  # moves the BN running stats
    ema_copy.update(model)
    ema_avg.update(model)
    rm1 = model[1].running_mean
    assert torch.equal(ema_copy.shadow["1.running_mean"], rm1)
    torch.testing.assert_close(ema_avg.shadow["1.running_mean"], 0.5 * rm0 + 0.5 * rm1)
    for e in (ema_copy, ema_avg):  # integer buffers are always copied
        assert e.shadow["1.num_batches_tracked"].dtype == torch.long
        assert int(e.shadow["1.num_batches_tracked"]) == 1


def test_apply_to_swaps_weights_in_and_restores_them_even_on_error():
    model = _model()
    ema = ModelEMA(model, decay=0.5)
    _set_weights(model, 1)
    ema.update(model)
    _set_weights(model, 2)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.apply_to(model) as m:
        assert m is model
        for k, v in model.state_dict().items():
            assert torch.equal(v, ema.shadow[k].to(v.dtype))
        assert not torch.equal(model[0].weight, live["0.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k])
    with pytest.raises(RuntimeError, match="boom"):
        with ema.apply_to(model):
            raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k])
    ema.copy_to(model)
    assert torch.equal(model[2].bias, ema.shadow["2.bias"])


def test_wrappers_low_precision_models_and_mismatches():
    model = _model()
    ema = ModelEMA(nn.DataParallel(model), decay=0.5)
    assert set(ema.shadow) == set(model.state_dict())  # no "module." prefix
    ema.update(nn.DataParallel(model))
    half = _model().half()
    ema_h = ModelEMA(half, decay=0.5)
    assert ema_h.shadow["0.weight"].dtype == torch.float32
    with pytest.raises(KeyError, match="missing"):
        ema.update(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.5)


def test_state_dict_resume_is_exact():
    model = _model()
    ema = ModelEMA(model, decay=0.99, warmup=True)
    for k in range(1, 4):
        _set_weights(model, k)
        ema.update(model)
    state = ema.state_dict()
    resumed = ModelEMA(_model(), decay=0.99, warmup=True)  # different initial weights
    resumed.load_state_dict(state)
    assert resumed.num_updates == 3
    for k in range(4, 7):
        _set_weights(model, k)
        ema.update(model)
        resumed.update(model)
    for name in ema.shadow:
        assert torch.equal(ema.shadow[name], resumed.shadow[name])
    bad = ema.state_dict()
    bad["shadow"].pop("0.weight")
    with pytest.raises(KeyError, match="0.weight"):
        resumed.load_state_dict(bad)
