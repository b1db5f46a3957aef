"""Geometry adaptation (inflation, resizing, head re-init), strictness and safe loading."""
import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.checkpoint.adapt import ShapeMismatchError, _inflate, adapt_state_dict
from mvit_tasks.checkpoint.io import save_checkpoint
from mvit_tasks.checkpoint.loader import CheckpointMismatchError, load_weights
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier


def test_inflated_kernel_gives_the_image_response_on_a_static_clip():
    w2d = torch.randn(8, 3, 1, 7, 7)
    w3d = _inflate(w2d, torch.empty(8, 3, 3, 7, 7))
    frame = torch.randn(1, 3, 1, 32, 32)
    clip = frame.repeat(1, 1, 5, 1, 1)
    y2d = F.conv3d(frame, w2d, padding=(0, 3, 3))
    y3d = F.conv3d(clip, w3d, padding=(0, 3, 3))  # valid in time: 3 outputs
    for t in range(y3d.shape[2]):
        torch.testing.assert_close(y3d[:, :, t], y2d[:, :, 0], rtol=1e-5, atol=1e-5)


def test_image_checkpoint_inflates_into_a_video_model():
    image = Classifier.from_arch(get_variant("mvitv2_t").arch.shallow(1), 10)
    video_arch = get_variant("mvitv2_t").arch.shallow(1).replace(
        video=True, num_frames=4, patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4),
        patch_padding=(1, 3, 3), pool_kvq_kernel=(3, 3, 3), rel_pos_temporal=True,
        pool_q_stride=[[0, 1, 1, 1], [1, 1, 2, 2], [2, 1, 2, 2], [3, 1, 2, 2]],
        pool_kv_stride_adaptive=(1, 4, 4))
    video = Classifier.from_arch(video_arch, 10)
    with pytest.raises(CheckpointMismatchError, match="rel_pos_t"):
        load_weights(video, image.state_dict())
    report = load_weights(video, image.state_dict(), allow_missing=["*.rel_pos_t"])
    assert any("inflated" in n for n in report.notes)
    assert len(report.missing) == 4 and all(k.endswith("rel_pos_t") for k in report.missing)
    w = video.state_dict()["backbone.patch_embed.proj.weight"]
    torch.testing.assert_close(w.sum(2), image.state_dict()["backbone.patch_embed.proj.weight"][:, :, 0])


def test_head_of_another_class_count_needs_explicit_permission():
    src = Classifier.from_arch(get_variant("mvitv2_t").arch.shallow(1), 1000)
    dst = Classifier.from_arch(get_variant("mvitv2_t").arch.shallow(1), 7)
    with pytest.raises(CheckpointMismatchError, match="head.projection.weight"):
        load_weights(dst, src.state_dict())
    report = load_weights(dst, src.state_dict(), allow_missing=["head."])
    assert sorted(report.missing) == ["head.projection.bias", "head.projection.weight"]
    torch.testing.assert_close(dst.backbone.blocks[0].attn.qkv.weight, src.backbone.blocks[0].attn.qkv.weight)


def test_unexpected_keys_are_listed_by_name():
    m = Classifier.from_arch(get_variant("mvitv2_t").arch.shallow(1), 3)
    sd = dict(m.state_dict(), **{"backbone.blocks.9.attn.qkv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys: backbone\.blocks\.9\.attn\.qkv\.weight"):
        load_weights(m, sd)


def test_unfittable_shape_names_the_key():
    m = Classifier.from_arch(get_variant("mvitv2_t").arch.shallow(1), 3)
    sd = m.state_dict()
    sd["backbone.blocks.0.mlp.fc1.weight"] = torch.zeros(5, 5)
    with pytest.raises(ShapeMismatchError, match="blocks.0.mlp.fc1.weight"):
        adapt_state_dict(sd, m.state_dict())


def test_native_checkpoint_file_round_trip(tmp_path):
    m = Classifier.from_arch(get_variant("mvitv2_s_16x4").arch.shallow(1), 4).eval()
    path = str(tmp_path / "model.pth")
    save_checkpoint({"model": m.state_dict(), "epoch": 3}, path)
    m2 = Classifier.from_arch(get_variant("mvitv2_s_16x4").arch.shallow(1), 4).eval()
    report = load_weights(m2, path)
    assert report.source == "native" and not report.missing
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x))


def test_create_model_with_weights_and_new_head(tmp_path):
    import mvit_tasks

    src = mvit_tasks.create_model("mvitv2_t")
    path = str(tmp_path / "t.pth")
    save_checkpoint({"model": src.state_dict()}, path)
    m = mvit_tasks.create_model("mvitv2_t", weights=path, num_classes=5).eval()
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    torch.testing.assert_close(m.backbone.patch_embed.proj.weight, src.backbone.patch_embed.proj.weight)
    same = mvit_tasks.create_model("mvitv2_t", weights=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(same(x), src.eval()(x))


def test_corrupt_files_are_format_errors_not_unsafe(tmp_path):
    from mvit_tasks.checkpoint.io import CheckpointFormatError, UnsafeCheckpointError, load_checkpoint_file

    (tmp_path / "g.pyth").write_text("garbage\n")
    (tmp_path / "r.pth").write_bytes(bytes(range(256)) * 8)
    for name in ("g.pyth", "r.pth"):
        with pytest.raises(CheckpointFormatError, match=name):
            load_checkpoint_file(str(tmp_path / name))
    torch.save({"x": torch.zeros(2), "obj": _Opaque()}, tmp_path / "u.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"_Opaque.*WEIGHTS_UNSAFE_PICKLE"):
        load_checkpoint_file(str(tmp_path / "u.pth"))
    assert isinstance(load_checkpoint_file(str(tmp_path / "u.pth"), allow_unsafe=True)["obj"], _Opaque)


def test_protocol5_numpy_pickle_is_safe(tmp_path):
    import pickle

    import numpy as np

    from mvit_tasks.checkpoint.io import load_checkpoint_file

    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump({"model": {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}}, f, protocol=5)
    obj = load_checkpoint_file(str(tmp_path / "m.pkl"))
    torch.testing.assert_close(obj["model"]["a"], torch.arange(6.0).reshape(2, 3))


class _Opaque:
    pass
