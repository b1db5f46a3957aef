"""Absolute position tables at another input size: detectron2's bicubic rule for 2-D tables,
SlowFast's trilinear one for video, the same at run time (forward) and load time (adapt).

References call ``F.interpolate`` directly on the table, as detectron2's ``get_abs_pos``
(``mode="bicubic", align_corners=False`` on the ``1 x C x H x W`` grid, cls row left out) and
SlowFast's ``_get_pos_embed`` (``mode="trilinear"`` on ``1 x C x T x H x W``) do.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.checkpoint.adapt import adapt_state_dict
from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.layers.pos_embed import resize_abs_pos


def _image_mvit(spatial=(32, 32), cls: bool = True, sep: bool = False, seed: int = 0) -> MViT:
    """2-D MViTv2 with absolute position tables (grid = spatial / 4), 1 block per stage."""
    torch.manual_seed(seed)
    arch = get_variant("mvitv2_t").arch.shallow(1).replace(
        embed_dim=16, use_abs_pos=True, sep_pos_embed=sep, cls_embed=cls, rel_pos_spatial=False,
        spatial_size=spatial)
    return MViT(arch).eval()


def _bicubic(grid: torch.Tensor, hw, size) -> torch.Tensor:
    """detectron2 get_abs_pos on a ``1 x (h*w) x C`` table (no cls row)."""
    c = grid.shape[-1]
    g = F.interpolate(grid.reshape(1, *hw, c).permute(0, 3, 1, 2), size=size, mode="bicubic",
                      align_corners=False)
    return g.permute(0, 2, 3, 1).reshape(1, -1, c)


@pytest.mark.parametrize("cls", [True, False])
def test_run_time_resize_of_a_2d_table_is_bicubic(cls):
    model = _image_mvit(cls=cls)
    table = model.pos_embed.detach()
    grid = table[:, 1:] if cls else table
    ours = model._abs_pos((1, 12, 16)).detach()
    ref = _bicubic(grid, (8, 8), (12, 16))
    if cls:  # the cls row is added to the cls token unchanged
        assert torch.equal(ours[:, :1], table[:, :1])
        ours = ours[:, 1:]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    trilinear = F.interpolate(grid.reshape(1, 1, 8, 8, -1).permute(0, 4, 1, 2, 3),
                              size=(1, 12, 16), mode="trilinear", align_corners=False)
    assert (trilinear.reshape(1, 16, -1).transpose(1, 2) - ref).abs().max() > 1e-3
    assert torch.equal(model._abs_pos((1, 8, 8)), table)  # configured size: untouched


def test_separate_2d_tables_are_resized_bicubically_too():
    model = _image_mvit(cls=True, sep=True)
    spatial, temporal = model.pos_embed_spatial.detach(), model.pos_embed_temporal.detach()
    ours = model._abs_pos((1, 10, 6)).detach()[:, 1:]
    torch.testing.assert_close(ours, _bicubic(spatial + temporal, (8, 8), (10, 6)), rtol=0,
                               atol=1e-6)


def test_video_tables_keep_slowfasts_trilinear_rule():
    torch.manual_seed(0)
    arch = get_variant("mvit_b_16x4").arch.shallow(1).replace(
        embed_dim=16, num_frames=4, spatial_size=(32, 32))
    model = MViT(arch).eval()
    t0, h0, w0 = model.patch_grid
    grid = (model.pos_embed_spatial.repeat(1, t0, 1)
            + torch.repeat_interleave(model.pos_embed_temporal, h0 * w0, dim=1)).detach()
    ours = model._abs_pos((t0, 12, 10)).detach()[:, 1:]
    ref = F.interpolate(grid.reshape(1, t0, h0, w0, -1).permute(0, 4, 1, 2, 3),
                        size=(t0, 12, 10), mode="trilinear", align_corners=False)
    torch.testing.assert_close(ours, ref.reshape(1, 16, -1).transpose(1, 2), rtol=0, atol=0)
    # load time: the spatial table of a video model also keeps the trilinear (= bilinear) rule
    spatial = torch.randn(1, 64, 16)
    out = resize_abs_pos(spatial, (1, 8, 8), (1, 12, 10), video=True)
    ref = F.interpolate(spatial.reshape(1, 8, 8, 16).permute(0, 3, 1, 2), size=(12, 10),
                        mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref.reshape(1, 16, -1).transpose(1, 2), rtol=0, atol=1e-6)


def test_forward_at_a_new_size_uses_the_bicubic_table():
    """The backbone at 48 x 64 px equals a backbone built for 48 x 64 holding the table that
    F.interpolate(bicubic) gives: the forward adds exactly that table."""
    small = _image_mvit(cls=False)
    big = _image_mvit((48, 64), cls=False, seed=1)
    sd = small.state_dict()
    sd["pos_embed"] = _bicubic(sd["pos_embed"], (8, 8), (12, 16))
    big.load_state_dict(sd)
    x = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = small(x), big(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,sep", [(True, False), (False, False), (True, True)])
def test_load_time_resize_is_bicubic_and_agrees_with_run_time(cls, sep):
    small = _image_mvit(cls=cls, sep=sep)
    big = _image_mvit((48, 64), cls=cls, sep=sep, seed=1)
    report = load_weights(big, {"backbone." + k: v for k, v in small.state_dict().items()},
                          rename=lambda k: k[len("backbone."):])
    assert any("pos_embed" in n and "resized" in n for n in report.notes)
    name = "pos_embed_spatial" if sep else "pos_embed"
    src = getattr(small, name).detach()
    src_grid = src[:, 1:] if cls and not sep else src
    loaded = getattr(big, name).detach()
    loaded_grid = loaded[:, 1:] if cls and not sep else loaded
    torch.testing.assert_close(loaded_grid, _bicubic(src_grid, (8, 8), (12, 16)), rtol=0,
                               atol=1e-6)
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = small(x), big(x)  # run-time resize vs load-time resize: the same features
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)


def test_load_time_drops_a_pretraining_cls_row_as_detectron2():
    """detectron2's MViT keeps a cls row in pos_embed (pretrain_use_cls_token) but has no cls
    token; get_abs_pos drops the row and resizes the rest."""
    model = _image_mvit((48, 64), cls=False)
    table = torch.randn(1, 1 + 64, 16)
    sd = {k: v for k, v in model.state_dict().items()}
    sd["pos_embed"] = table
    fitted, notes = adapt_state_dict(sd, model.state_dict(), model.patch_grid, has_cls=False)
    torch.testing.assert_close(fitted["pos_embed"], _bicubic(table[:, 1:], (8, 8), (12, 16)),
                               rtol=0, atol=1e-6)
    assert any("pos_embed" in n for n in notes)


def test_resize_abs_pos_checks_its_grids():
    table = torch.randn(1, 12, 4)
    assert resize_abs_pos(table, (1, 3, 4), (1, 3, 4)) is table
    with pytest.raises(ValueError, match="does not lie"):
        resize_abs_pos(table, (1, 4, 4), (1, 5, 5))
    with pytest.raises(ValueError, match="one time step"):
        resize_abs_pos(table, (3, 2, 2), (1, 5, 5), video=False)
    half = resize_abs_pos(table.half(), (1, 3, 4), (1, 6, 8))
    assert half.dtype == torch.float16 and half.shape == (1, 48, 4)
