"""The weights registry against its sources: the addresses the installed peers publish are
ours verbatim, hashes are only the published ones, and the class lists are what they claim."""
from __future__ import annotations

import os
import re
from collections import Counter

import pytest

from mvit_tasks.checkpoint.converters.base import get_converter
from mvit_tasks.data.classnames import (
    CLASS_LISTS,
    ava_evaluated_ids,
    list_class_lists,
    load_class_names,
)
from mvit_tasks.modeling.backbone.pretrained import PRETRAINED, all_weights
from mvit_tasks.modeling.backbone.variants import get_variant, list_variants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_entry_is_complete_and_consistent():
    assert set(PRETRAINED) <= set(list_variants())
    names = Counter(w.file_name for _, w in all_weights())
    assert all(n == 1 for n in names.values()), names  # one cache file per entry
    for variant, w in all_weights():
        v = get_variant(variant)
        assert w.url.startswith("https://") and w.page and w.dataset, (variant, w.tag)
        get_converter(w.source)
        assert (w.num_classes == 0) == (v.task == "detection-backbone"), (variant, w.tag)
        if w.class_names:
            assert CLASS_LISTS[w.class_names][1] == (w.num_classes or 80), (variant, w.tag)
        assert w.sha256 is None  # no page publishes one: never invented
        if w.hash_prefix:  # torchvision's name-<sha256 prefix>.pth
            assert re.search(rf"-{w.hash_prefix}\.pth$", w.url) and w.source == "torchvision"
        assert (w.size_mb is not None) == (w.source == "torchvision")
        assert w.resize_size >= w.crop_size
        assert w.crop_size == v.crop_size or v.task == "detection-backbone"
    tags = {v: [w.tag for w in ws] for v, ws in PRETRAINED.items()}
    assert all(len(t) == len(set(t)) for t in tags.values()), tags


def test_torchvision_addresses_hashes_and_sizes_are_torchvision_own():
    from torchvision.models.video import MViT_V1_B_Weights, MViT_V2_S_Weights

    for variant, enum in (("mvit_b_16x4", MViT_V1_B_Weights), ("mvitv2_s_16x4", MViT_V2_S_Weights)):
        ours = get_variant(variant).weights("k400_torchvision")
        theirs = enum.KINETICS400_V1
        assert ours.url == theirs.url and ours.size_mb == theirs.meta["_file_size"]
        assert ours.metrics == theirs.meta["_metrics"]["Kinetics-400"]
        assert ours.hash_prefix == re.search(r"-([0-9a-f]+)\.", theirs.url).group(1)
        cfg = get_variant(variant).pretrained_cfg("k400_torchvision")
        t = theirs.transforms()
        assert [cfg["resize_size"]] == t.resize_size and [224, 224] == t.crop_size
        assert list(cfg["mean"]) == t.mean and list(cfg["std"]) == t.std
        assert get_variant(variant).meta("k400_torchvision")["num_params"] == \
            theirs.meta["num_params"]
        assert get_variant(variant).meta("k400_torchvision")["categories"] == \
            list(theirs.meta["categories"])


def test_timm_and_mvit_addresses_are_timm_own():
    from timm.models import get_pretrained_cfg

    pairs = {"mvitv2_t": "mvitv2_tiny.fb_in1k", "mvitv2_s": "mvitv2_small.fb_in1k",
             "mvitv2_b": "mvitv2_base.fb_in1k", "mvitv2_l": "mvitv2_large.fb_in1k",
             "mvitv2_b_cls": "mvitv2_base_cls.fb_inw21k",
             "mvitv2_l_cls": "mvitv2_large_cls.fb_inw21k",
             "mvitv2_h_cls": "mvitv2_huge_cls.fb_inw21k"}
    for variant, timm_name in pairs.items():
        cfg = get_pretrained_cfg(timm_name)
        ours = get_variant(variant).list_weights()
        assert ours[0].url == cfg.url and ours[0].source == "mvit"
        assert ours[0].num_classes == cfg.num_classes
        hub = ours[1]
        assert hub.source == "timm" and f"/{cfg.hf_hub_id}/" in hub.url
        assert hub.crop_pct == pytest.approx(cfg.crop_pct, abs=0.005)
        assert hub.interpolation == cfg.interpolation
    assert get_variant("mvitv2_s_cls").list_weights() == []  # timm: url ''


def test_pytorchvideo_addresses_are_pytorchvideo_own():
    from pytorchvideo.models.hub.vision_transformers import checkpoint_paths

    assert get_variant("mvit_b_16x4").weights("k400_pytorchvideo").url == \
        checkpoint_paths["mvit_base_16x4"]
    assert get_variant("mvit_b_32x3").weights("k400_pytorchvideo").url == \
        checkpoint_paths["mvit_base_32x3"]


def test_slowfast_and_detectron2_addresses_are_on_their_pages_when_mirrored():
    """Read the official pages from the bare mirrors when this machine has them."""
    import subprocess

    pages = {"slowfast": ("facebookresearch+SlowFast", ["MODEL_ZOO.md",
                                                          "projects/mvitv2/README.md"]),
             "detectron2": ("facebookresearch+detectron2", ["projects/MViTv2/README.md"])}
    checked = 0
    for source, (mirror, files) in pages.items():
        repo = os.path.join("/work/.mirror", mirror, "repo")
        if not os.path.isdir(repo):
            continue
        text = "".join(subprocess.run(["git", "-C", repo, "show", f"HEAD:{f}"],
                                      capture_output=True, text=True).stdout for f in files)
        for _, w in all_weights():
            if w.source == source:
                assert w.url in text, w.url
                checked += 1
    if not checked:
        pytest.skip("no SlowFast / detectron2 mirror on this machine")


def test_class_lists():
    for name in list_class_lists():
        names = load_class_names(name)
        assert len(names) == CLASS_LISTS[name][1]
        if name != "ava80":
            assert len(set(names)) == len(names) and all(n.strip() == n and n for n in names)
    from torchvision.models._meta import (
        _COCO_CATEGORIES,
        _IMAGENET_CATEGORIES,
        _KINETICS400_CATEGORIES,
    )

    assert load_class_names("kinetics400") == list(_KINETICS400_CATEGORIES)
    assert load_class_names("imagenet1k") == list(_IMAGENET_CATEGORIES)
    assert load_class_names("coco80") == [c for c in _COCO_CATEGORIES
                                          if c not in ("__background__", "N/A")]
    for name in ("kinetics400", "kinetics600", "kinetics700", "ssv2"):
        assert load_class_names(name) == sorted(load_class_names(name))
    ava = load_class_names("ava80")
    evaluated = ava_evaluated_ids()
    assert len(evaluated) == 60 and evaluated[:3] == [1, 3, 4]
    assert all(ava[i - 1] for i in evaluated)
    assert [i for i in range(1, 81) if ava[i - 1]] == evaluated  # names only where official
    assert ava[0] == "bend/bow (at the waist)" and ava[79] == "watch (a person)"


def test_every_variant_names_a_class_list_of_its_head():
    for name in list_variants():
        v = get_variant(name)
        if v.class_names and v.task != "detection-backbone":
            assert CLASS_LISTS[v.class_names][1] == v.num_classes, name
    assert get_variant("mvitv2_s_16x4").weights("ssv2").class_names == "ssv2"
    assert get_variant("mvitv2_b_cls").class_names == ""  # IN-21K names: not shipped
