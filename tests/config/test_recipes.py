"""--config-file by path, by repository path from any directory, and by recipe name
(mvit_tasks.config.recipes), against the files actually in the repository."""
from __future__ import annotations

import os

import pytest

from mvit_tasks.config.recipes import config_roots, list_recipes, resolve_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AVA_S = os.path.join(ROOT, "projects", "ava", "configs", "mvitv2_s_16x4_k400.yaml")


def test_every_yaml_of_the_repository_is_a_recipe():
    on_disk = sorted(os.path.relpath(os.path.join(d, f), ROOT).replace(os.sep, "/")
                     for top in ("projects", "configs")
                     for d, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs
                     if f.endswith(".yaml"))
    assert list_recipes() == on_disk and len(on_disk) > 40
    assert config_roots() == {"projects": os.path.join(ROOT, "projects"),
                              "configs": os.path.join(ROOT, "configs")}


@pytest.mark.parametrize("name", [
    AVA_S,                                            # a path
    "projects/ava/configs/mvitv2_s_16x4_k400.yaml",   # the repository path, from anywhere
    "ava/mvitv2_s_16x4_k400",                         # project folder + name
    "ava/mvitv2_s_16x4_k400.yaml",
])
def test_one_recipe_many_spellings(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root
    assert os.path.samefile(resolve_config_file(name), AVA_S)


def test_shortened_folder_and_shared_fragments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    coco = resolve_config_file("coco/mask_rcnn_mvitv2_t_3x")
    assert coco == os.path.join(ROOT, "projects", "coco_detection", "configs",
                                "mask_rcnn_mvitv2_t_3x.yaml")
    assert resolve_config_file("backbones/mvitv2_t") == os.path.join(
        ROOT, "configs", "backbones", "mvitv2_t.yaml")
    assert resolve_config_file("mvitv2_b_32x3_ssv2").endswith(
        "video_classification/configs/mvitv2_b_32x3_ssv2.yaml")


def test_a_local_file_wins_over_a_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_shapes.yaml").write_text("SEED: 3\n")
    assert resolve_config_file("demo_shapes.yaml") == "demo_shapes.yaml"
    assert resolve_config_file("demo_shapes").endswith("coco_detection/configs/demo_shapes.yaml")


def test_ambiguous_and_unknown_names_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="several shipped recipes: "
                       "projects/ava/configs/mvitv2_s_16x4_k400.yaml, "
                       "projects/video_classification/configs/mvitv2_s_16x4_k400.yaml"):
        resolve_config_file("mvitv2_s_16x4_k400")
    with pytest.raises(FileNotFoundError, match="'nope.yaml' does not exist .*--list-configs"):
        resolve_config_file("nope.yaml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_config_file(str(tmp_path / "missing" / "demo_shapes.yaml"))  # absolute: no search
