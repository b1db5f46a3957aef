"""Dataset converters (Kinetics CSV / SlowFast lists, SSv2 JSON, ImageNet folders) on tiny real
files: the manifests they write read back with ``read_manifest`` and give the exact labels;
missing media are counted and listed; malformed input names the file and line."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mvit_tasks.data.manifest import ManifestError, read_class_list, read_manifest
from mvit_tasks.data.video_io import read_clip, write_video
from mvit_tasks.projects.video_classification.converters import (
    convert_imagenet,
    convert_kinetics,
    convert_path_label_list,
    convert_ssv2,
    load_flip_pairs,
    read_frame_list,
    read_kinetics_csv,
    ssv2_flip_pairs,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
K_HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("media") / "clip.mp4")
    frames = np.stack([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(3)])
    write_video(path, frames, fps=8)
    return path


def _put(src: str, dst) -> str:
    os.makedirs(os.path.dirname(str(dst)), exist_ok=True)
    shutil.copyfile(src, str(dst))
    return str(dst)


def _write(path, text: str) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


# ----------------------------------------------------------------------------------- Kinetics
def _kinetics(tmp_path, mp4):
    ann = tmp_path / "ann"
    train = _write(ann / "train.csv", K_HEADER + "\n".join([
        "air drumming,aaaaaaaaaaa,14,24,train,0",
        "abseiling,bbbbbbbbbbb,0,10,train,1",
        '"passing American football (in game)",ccccccccccc,100,110,train,0',
        "abseiling,ddddddddddd,5,15,train,0",          # no video on disk -> missing
    ]) + "\n")
    val = _write(ann / "validate.csv", K_HEADER + "abseiling,eeeeeeeeeee,3,13,val,0\n")
    test = _write(ann / "test.csv", "youtube_id,time_start,time_end,split\n"
                                    "fffffffffff,7,17,test\n")
    vids = tmp_path / "videos"
    # <split>/<label>/ layout with underscores, a flat folder and an .mkv extension
    _put(mp4, vids / "train" / "air_drumming" / "aaaaaaaaaaa_000014_000024.mp4")
    _put(mp4, vids / "train" / "abseiling" / "bbbbbbbbbbb_000000_000010.mkv")
    _put(mp4, vids / "train" / "passing American football (in game)"
         / "ccccccccccc_000100_000110.mp4")
    _put(mp4, vids / "val" / "eeeeeeeeeee_000003_000013.mp4")
    _put(mp4, vids / "test" / "fffffffffff_000007_000017.mp4")
    return {"train": train, "val": val, "test": test}, str(vids)


def test_kinetics_official_csv(tmp_path, mp4):
    splits, vids = _kinetics(tmp_path, mp4)
    out = str(tmp_path / "videos")  # manifests next to the videos: relative paths
    summary = convert_kinetics(splits, vids, out, num_classes=3)
    classes = read_class_list(os.path.join(out, "labels.txt"))
    assert classes == ["abseiling", "air drumming", "passing American football (in game)"]
    assert summary["num_classes"] == 3
    train = read_manifest(os.path.join(out, "train.csv"), classes)
    assert [(r.video_id, r.label) for r in train] == [
        ("aaaaaaaaaaa_000014_000024", 1), ("bbbbbbbbbbb_000000_000010", 0),
        ("ccccccccccc_000100_000110", 2)]
    assert [r.line for r in train] == [2, 3, 4]  # manifest lines (header = 1)
    assert train[1].path.endswith(os.path.join("abseiling", "bbbbbbbbbbb_000000_000010.mkv"))
    assert all(os.path.isfile(r.path) for r in train)
    with open(os.path.join(out, "train.csv")) as f:
        assert f.read().splitlines()[1].startswith("train/air_drumming/aaaaaaaaaaa")  # relative
    assert read_clip(train[0].path, 3, 1, 0).shape == (3, 16, 16, 3)
    s = summary["splits"]
    assert (s["train"]["rows"], s["train"]["missing"], s["val"]["rows"], s["val"]["missing"]) \
        == (3, 1, 1, 0)
    with open(s["train"]["missing_file"]) as f:
        assert f.read() == f"ddddddddddd_000005_000015\t{splits['train']}:5\n"
    assert s["val"]["missing_file"] is None
    test = read_manifest(os.path.join(out, "test.csv"), classes, allow_unlabelled=True)
    assert [(r.video_id, r.label) for r in test] == [("fffffffffff_000007_000017", -1)]
    with pytest.raises(ManifestError):  # the test manifest really is unlabelled
        read_manifest(os.path.join(out, "test.csv"), classes)

    # fixing the dataset removes the stale missing list; untrimmed mode writes segments
    _put(mp4, tmp_path / "videos" / "ddddddddddd_000005_000015.mp4")
    summary = convert_kinetics({"train": splits["train"]}, vids, out)
    assert summary["splits"]["train"]["missing"] == 0
    assert not os.path.exists(os.path.join(out, "missing_train.txt"))
    _put(mp4, tmp_path / "full" / "eeeeeeeeeee.mp4")
    convert_kinetics({"val": splits["val"]}, str(tmp_path / "full"), str(tmp_path / "full"),
                     name_format="{youtube_id}", classes=classes, segments=True)
    (rec,) = read_manifest(str(tmp_path / "full" / "val.csv"), classes)
    assert (rec.start_sec, rec.end_sec, rec.label) == (3.0, 13.0, 0)


def test_kinetics_duplicate_names_prefer_label_folder(tmp_path, mp4):
    csv_path = _write(tmp_path / "k" / "train.csv", K_HEADER + "zumba,zzzzzzzzzzz,1,11,train,0\n"
                      "abseiling,yyyyyyyyyyy,1,11,train,0\n")
    _put(mp4, tmp_path / "v" / "train" / "abseiling" / "zzzzzzzzzzz_000001_000011.mp4")
    _put(mp4, tmp_path / "v" / "train" / "zumba" / "zzzzzzzzzzz_000001_000011.mp4")
    _put(mp4, tmp_path / "v" / "train" / "abseiling" / "yyyyyyyyyyy_000001_000011.mp4")
    summary = convert_kinetics({"train": csv_path}, str(tmp_path / "v"), str(tmp_path / "v"))
    assert summary["splits"]["train"]["ambiguous"] == 1
    rows = read_manifest(str(tmp_path / "v" / "train.csv"), ["abseiling", "zumba"])
    assert rows[0].path.endswith(os.path.join("zumba", "zzzzzzzzzzz_000001_000011.mp4"))


def test_kinetics_bad_input_names_file_and_line(tmp_path, mp4):
    splits, vids = _kinetics(tmp_path, mp4)
    bad = _write(tmp_path / "bad.csv", K_HEADER + "abseiling,bbbbbbbbbbb,0,10,train,0\n"
                                                  "abseiling,bbbbbbbbbbb,0,train,0\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:3: 5 fields, the header has 6"):
        read_kinetics_csv(bad)
    bad = _write(tmp_path / "bad2.csv", K_HEADER + "abseiling,bbbbbbbbbbb,x,10,train,0\n")
    with pytest.raises(ManifestError, match=r"bad2\.csv:2: column 'time_start'"):
        read_kinetics_csv(bad)
    bad = _write(tmp_path / "bad3.csv", K_HEADER + "\n,bbbbbbbbbbb,0,10,train,0\n")
    with pytest.raises(ManifestError, match=r"bad3\.csv:3: empty 'label'"):
        convert_kinetics({"train": bad}, vids, str(tmp_path / "o"))
    unknown = _write(tmp_path / "val.csv", K_HEADER + "abseiling,eeeeeeeeeee,3,13,val,0\n"
                                                      "yodelling,eeeeeeeeeee,4,14,val,0\n")
    with pytest.raises(ManifestError, match=r"val\.csv:3: unknown label 'yodelling'"):
        convert_kinetics({"train": splits["train"], "val": unknown}, vids, str(tmp_path / "o"))
    with pytest.raises(ValueError, match="has 3 classes, expected 400"):
        convert_kinetics(splits, vids, str(tmp_path / "o"), num_classes=400)
    with pytest.raises(ValueError, match="is one of the input annotation files"):
        convert_kinetics(splits, vids, str(tmp_path / "ann"))  # would overwrite ann/train.csv
    with pytest.raises(ValueError, match="no 'train' split"):
        convert_kinetics({"val": splits["val"]}, vids, str(tmp_path / "o"))


def test_slowfast_path_label_list(tmp_path, mp4):
    prefix = tmp_path / "data"
    _put(mp4, prefix / "air drumming" / "a.mp4")
    _put(mp4, prefix / "abseiling" / "b.mp4")
    lst = _write(tmp_path / "sf" / "train.csv",
                 "air drumming/a.mp4 1\nabseiling/b.mp4 0\n\nabseiling/gone.mp4 0\n")
    out = str(prefix / "train.csv")
    summary = convert_path_label_list(lst, out, path_prefix=str(prefix), num_classes=2)
    rows = read_manifest(out, num_classes=2)
    assert [(os.path.relpath(r.path, prefix), r.label) for r in rows] == [
        (os.path.join("air drumming", "a.mp4"), 1), (os.path.join("abseiling", "b.mp4"), 0)]
    s = summary["splits"]["train"]
    assert (s["rows"], s["missing"], summary["num_classes"]) == (2, 1, 2)
    with open(s["missing_file"]) as f:
        assert f.read() == f"abseiling/gone.mp4\t{lst}:4\n"
    labels = _write(tmp_path / "labels.txt", "abseiling\nair drumming\n")
    convert_path_label_list(lst, out, path_prefix=str(prefix), classes=labels)
    assert read_class_list(str(prefix / "labels.txt")) == ["abseiling", "air drumming"]
    assert [r.label for r in read_manifest(out, ["abseiling", "air drumming"])] == [1, 0]
    bad = _write(tmp_path / "bad.txt", "abseiling/b.mp4 0\nabseiling/b.mp4 two\n")
    with pytest.raises(ManifestError, match=r"bad\.txt:2: label 'two' is not an integer"):
        convert_path_label_list(bad, out, path_prefix=str(prefix))
    bad = _write(tmp_path / "bad2.txt", "abseiling/b.mp4 0\n\nabseiling/b.mp4 2\n")
    with pytest.raises(ManifestError, match=r"bad2\.txt:3: label 2 out of range \[0, 2\)"):
        convert_path_label_list(bad, out, path_prefix=str(prefix), num_classes=2)


# --------------------------------------------------------------------------------------- SSv2
SSV2_LABELS = {
    "Pulling something from left to right": "0", "Pulling something from right to left": "1",
    "Putting something on a surface": "2", "Turning the camera left while filming something": "3",
    "Turning the camera right while filming something": "4",
    "Turning the camera upwards while filming something": "5",
    "Pushing something from right to left": "6", "Pushing something from left to right": "7",
}


def _entry(vid: str, template: str) -> dict:
    return {"id": vid, "label": template.replace("[", "").replace("]", ""),
            "template": template, "placeholders": ["a cup"]}


def _ssv2(tmp_path, mp4):
    ann = tmp_path / "ann"
    _write(ann / "something-something-v2-labels.json", json.dumps(SSV2_LABELS, indent=4))
    train = [_entry("101", "Putting [something] on a surface"),
             _entry("102", "Pushing [something] from left to right"),
             _entry("103", "Turning the camera left while filming [something]"),
             _entry("104", "Pulling [something] from right to left")]  # no media
    _write(ann / "something-something-v2-train.json", json.dumps(train, indent=4))
    _write(ann / "something-something-v2-validation.json",
           json.dumps([_entry("201", "Pulling [something] from left to right")], indent=4))
    _write(ann / "something-something-v2-test.json", json.dumps([{"id": "301"}]))
    media = tmp_path / "media"
    os.makedirs(media)
    frames = np.stack([np.full((16, 16, 3), 50 * i, np.uint8) for i in range(3)])
    write_video(str(media / "101.webm"), frames, codec="libvpx-vp9")
    _put(mp4, media / "102.mp4")
    for i in range(3):  # a frame folder
        os.makedirs(media / "103", exist_ok=True)
        cv2.imwrite(str(media / "103" / f"103_{i + 1:06d}.jpg"), frames[i])
    _put(mp4, media / "201.webm.mp4")  # wrong name: 201 is missing
    _put(mp4, media / "301.mp4")
    return ann, media


def test_ssv2_json_media_and_flip_pairs(tmp_path, mp4):
    from mvit_tasks.projects.video_classification.converters import find_ssv2_annotations

    ann, media = _ssv2(tmp_path, mp4)
    found = find_ssv2_annotations(str(ann))
    out = str(tmp_path / "media")
    summary = convert_ssv2(found["labels"], {"train": found["train"], "val": found["val"],
                                             "test": found["test"]}, out, media_root=str(media))
    classes = read_class_list(os.path.join(out, "labels.txt"))
    assert classes == sorted(SSV2_LABELS, key=lambda k: int(SSV2_LABELS[k]))  # ordered by id
    train = read_manifest(os.path.join(out, "train.csv"), classes)
    assert [(r.video_id, r.label, os.path.basename(r.path)) for r in train] == [
        ("101", 2, "101.webm"), ("102", 7, "102.mp4"), ("103", 3, "103")]
    assert read_clip(train[0].path, 3, 1, 0).shape == (3, 16, 16, 3)
    s = summary["splits"]
    assert (s["train"]["rows"], s["train"]["missing"], s["val"]["rows"], s["val"]["missing"]) \
        == (3, 1, 0, 1)
    with open(s["train"]["missing_file"]) as f:
        assert f.read().split("\t")[0] == "104"
    test = read_manifest(os.path.join(out, "test.csv"), classes, allow_unlabelled=True)
    assert [(r.video_id, r.label) for r in test] == [("301", -1)]
    expected = {0: 1, 1: 0, 3: 4, 4: 3, 6: 7, 7: 6}  # 2 and 5 ("upwards") have no mirror
    assert ssv2_flip_pairs(classes) == expected
    assert load_flip_pairs(summary["flip_pairs_file"]) == expected
    with open(summary["flip_pairs_file"]) as f:
        assert json.load(f)["3"] == 4


def test_ssv2_frame_lists(tmp_path, mp4):
    ann, media = _ssv2(tmp_path, mp4)
    lines = ["original_vido_id video_id frame_id path labels"]
    for k, vid in enumerate(("101", "102", "103", "999")):
        lines += [f'{vid} {k} {i} {vid}/{vid}_{i + 1:06d}.jpg ""' for i in range(2)]
        os.makedirs(media / "frames" / vid, exist_ok=True)
    lst = _write(tmp_path / "train_frames.csv", "\n".join(lines) + "\n")
    summary = convert_ssv2(str(ann / "something-something-v2-labels.json"),
                           {"train": str(ann / "something-something-v2-train.json")},
                           str(tmp_path / "out"), frame_lists={"train": lst},
                           frame_prefix=str(media / "frames"))
    rows = read_manifest(str(tmp_path / "out" / "train.csv"), list(SSV2_LABELS))
    assert [(r.path, r.label) for r in rows] == [
        (str(media / "frames" / "101"), 2), (str(media / "frames" / "102"), 7),
        (str(media / "frames" / "103"), 3)]
    s = summary["splits"]["train"]
    assert (s["missing"], s["unannotated"]) == (1, 1)  # 104 not listed; 999 not annotated
    bad = _write(tmp_path / "bad_frames.csv", "\n".join(
        [lines[0], '7 0 0 7/7_000002.jpg ""', '7 0 1 7/7_000001.jpg ""']) + "\n")
    with pytest.raises(ManifestError, match=r"bad_frames\.csv:3: .*file-name order"):
        read_frame_list(bad)
    bad = _write(tmp_path / "bad_frames2.csv", lines[0] + "\n7 0 7/7_000001.jpg\n")
    with pytest.raises(ManifestError, match=r"bad_frames2\.csv:2: 3 fields"):
        read_frame_list(bad)


def test_ssv2_bad_json_names_entry_and_line(tmp_path, mp4):
    ann, media = _ssv2(tmp_path, mp4)
    labels = str(ann / "something-something-v2-labels.json")
    entries = [_entry("1", "Putting [something] on a surface"),
               _entry("2", "Juggling [something]")]
    bad = _write(tmp_path / "unknown.json", json.dumps(entries, indent=4))
    line2 = json.dumps(entries, indent=4).splitlines().index("    {", 2) + 1
    with pytest.raises(ManifestError, match=rf"unknown\.json:{line2}: entry 1 \(id '2'\): "
                                            r"template 'Juggling \[something\]'"):
        convert_ssv2(labels, {"train": bad}, str(tmp_path / "o"), media_root=str(media))
    text = '[\n{"id": "1", "template": "Putting [something] on a surface"}\n{"id": "2"}\n]'
    bad = _write(tmp_path / "comma.json", text)
    with pytest.raises(ManifestError, match=r"comma\.json:3: after entry 0: expected ','"):
        convert_ssv2(labels, {"train": bad}, str(tmp_path / "o"), media_root=str(media))
    bad = _write(tmp_path / "noid.json", '[{"id": "1", "template": "Putting [something] on a '
                                         'surface"},\n {"template": "x"}]')
    with pytest.raises(ManifestError, match=r"noid\.json:2: entry 1: missing 'id'"):
        convert_ssv2(labels, {"train": bad}, str(tmp_path / "o"), media_root=str(media))
    bad = _write(tmp_path / "notemplate.json", '[{"id": "1"}]')
    with pytest.raises(ManifestError, match=r"notemplate\.json:1: entry 0 \(id '1'\): missing "):
        convert_ssv2(labels, {"val": bad}, str(tmp_path / "o"), media_root=str(media))
    gap = _write(tmp_path / "labels_gap.json", '{\n "A": "0",\n "B": "2"\n}')
    with pytest.raises(ManifestError, match=r"labels_gap\.json: ids must be 0\.\.1"):
        convert_ssv2(gap, {}, str(tmp_path / "o"))
    dup = _write(tmp_path / "labels_dup.json", '{\n "A": "0",\n "B": "0"\n}')
    with pytest.raises(ManifestError, match=r"labels_dup\.json:3: template 'B': id 0"):
        convert_ssv2(dup, {}, str(tmp_path / "o"))


# ----------------------------------------------------------------------------------- ImageNet
WNIDS = ["n01440764", "n01443537", "n02119789"]


def _img(path) -> None:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))


def test_imagenet_folders_match_imagefolder(tmp_path):
    import torchvision

    root = tmp_path / "imagenet"
    for k, w in enumerate(WNIDS[::-1]):
        for i in range(2):
            _img(root / "train" / w / f"{w}_{i + 10 * k}.JPEG")
        _img(root / "val" / w / f"ILSVRC2012_val_0000000{k}.JPEG")
    _write(root / "train" / WNIDS[0] / "notes.txt", "not an image")
    summary = convert_imagenet(str(root), str(root))
    classes = read_class_list(str(root / "labels.txt"))
    folder = torchvision.datasets.ImageFolder(str(root / "train"))
    assert classes == WNIDS == folder.classes
    train = read_manifest(str(root / "train.csv"), classes)
    assert [(r.path, r.label) for r in train] == folder.samples
    val = read_manifest(str(root / "val.csv"), classes)
    assert [(r.video_id, r.label) for r in val] == [
        ("ILSVRC2012_val_00000002", 0), ("ILSVRC2012_val_00000001", 1),
        ("ILSVRC2012_val_00000000", 2)]
    s = summary["splits"]
    assert (s["train"]["rows"], s["train"]["skipped_files"], s["val"]["rows"]) == (6, 1, 3)
    _img(root / "val" / "n09999999" / "x.JPEG")
    with pytest.raises(ValueError, match="n09999999' is not one of the 3 classes"):
        convert_imagenet(str(root), str(root))


def test_imagenet_flat_val_annotations(tmp_path):
    root = tmp_path / "imagenet"
    for w in WNIDS:
        _img(root / "train" / w / f"{w}_1.JPEG")
    for i in (1, 2, 4):  # image 3 is annotated but absent
        _img(root / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    loc = _write(tmp_path / "LOC_val_solution.csv", "ImageId,PredictionString\n"
                 f"ILSVRC2012_val_00000002,{WNIDS[2]} 1 2 3 4 {WNIDS[2]} 5 6 7 8\n"
                 f"ILSVRC2012_val_00000001,{WNIDS[0]} 1 2 3 4\n"
                 f"ILSVRC2012_val_00000003,{WNIDS[1]} 1 2 3 4\n")
    out = str(tmp_path / "out")
    summary = convert_imagenet(str(root), out, val_annotations=loc)
    val = read_manifest(os.path.join(out, "val.csv"), WNIDS)
    assert [(r.video_id, r.label) for r in val] == [
        ("ILSVRC2012_val_00000002", 2), ("ILSVRC2012_val_00000001", 0)]
    s = summary["splits"]["val"]
    assert (s["rows"], s["missing"], s["unannotated"]) == (2, 1, 1)
    with open(s["missing_file"]) as f:
        assert f.read() == f"ILSVRC2012_val_00000003\t{loc}:4\n"
    # the devkit ground truth: 1-based ILSVRC2012_IDs + wnids in devkit (unsorted) order
    synsets = _write(tmp_path / "synsets.txt", f"{WNIDS[2]} kit fox\n{WNIDS[0]}\n{WNIDS[1]}\n")
    gt = _write(tmp_path / "gt.txt", "2\n1\n3\n3\n")
    convert_imagenet(str(root), out, splits=["val"], val_annotations=gt, val_synsets=synsets,
                     classes=WNIDS)
    val = read_manifest(os.path.join(out, "val.csv"), WNIDS)
    assert [(r.video_id, r.label) for r in val] == [
        ("ILSVRC2012_val_00000001", 0), ("ILSVRC2012_val_00000002", 2),
        ("ILSVRC2012_val_00000004", 1)]
    sorted_syn = _write(tmp_path / "sorted.txt", "\n".join(WNIDS) + "\n")
    with pytest.raises(ValueError, match="sorted order"):
        convert_imagenet(str(root), out, val_annotations=gt, val_synsets=sorted_syn)
    bad = _write(tmp_path / "bad.csv", "ImageId,PredictionString\n"
                 f"ILSVRC2012_val_00000001,{WNIDS[0]} 1 2 3 4\n"
                 "ILSVRC2012_val_00000002,n00000001 1\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:3: wnid 'n00000001' is not one of"):
        convert_imagenet(str(root), out, val_annotations=bad)
    with pytest.raises(ManifestError, match=r"gt\.txt:1: integer label needs val_synsets"):
        convert_imagenet(str(root), out, val_annotations=gt)
    with pytest.raises(ValueError, match="has no class folders"):
        convert_imagenet(str(root), out)


# ------------------------------------------------------------------------------------- CLIs
def _load_cli(name: str):
    return importlib.import_module(f"mvit_tasks.cli.{name}")  # datasets/<name>.py's code


def test_prepare_clis(tmp_path, mp4, capsys):
    splits, vids = _kinetics(tmp_path, mp4)
    cmd = [sys.executable, os.path.join(ROOT, "datasets", "prepare_kinetics.py"), "official",
           "--video-root", vids, "--out", str(tmp_path / "k"), "--train", splits["train"],
           "--val", splits["val"], "--num-classes", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kinetics: 3 classes" in proc.stdout
    assert "train: 3 rows" in proc.stdout and "missing media: 1" in proc.stdout
    assert len(read_manifest(str(tmp_path / "k" / "val.csv"),
                             read_class_list(str(tmp_path / "k" / "labels.txt")))) == 1

    ann, media = _ssv2(tmp_path, mp4)
    ssv2 = _load_cli("prepare_ssv2")
    assert ssv2.main(["--annotations", str(ann), "--media-root", str(media),
                      "--out", str(tmp_path / "s")]) == 0
    assert "ssv2: 8 classes" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "s" / "flip_pairs.json")
    _write(ann / "something-something-v2-validation.json", '[{"id": "1"}]')
    assert ssv2.main(["--annotations", str(ann), "--media-root", str(media),
                      "--out", str(tmp_path / "s")]) == 1
    assert "validation.json:1: entry 0 (id '1'): missing 'template'" in capsys.readouterr().err

    imagenet = _load_cli("prepare_imagenet")
    _img(tmp_path / "in" / "train" / WNIDS[0] / "a.JPEG")
    _img(tmp_path / "in" / "val" / WNIDS[0] / "b.JPEG")
    assert imagenet.main(["--root", str(tmp_path / "in"), "--out", str(tmp_path / "in")]) == 0
    assert "val: 1 rows" in capsys.readouterr().out


# ------------------------------------------------- all or nothing, strict rows, file modes
def _snapshot(folder) -> dict:
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def test_a_failed_conversion_leaves_the_old_dataset_intact(tmp_path, mp4):
    splits, vids = _kinetics(tmp_path, mp4)
    out = str(tmp_path / "out")
    convert_kinetics({"train": splits["train"], "val": splits["val"]}, vids, out)
    before = _snapshot(out)
    assert {"labels.txt", "train.csv", "val.csv", "missing_train.txt"} <= set(before)
    # a new class in train, then a bad row in val: train.csv / labels.txt would change
    train2 = _write(tmp_path / "ann2" / "train.csv", open(splits["train"]).read()
                    + "zumba,zzzzzzzzzzz,1,11,train,0\n")
    bad_val = _write(tmp_path / "ann2" / "validate.csv", K_HEADER
                     + "abseiling,eeeeeeeeeee,3,13,val,0\nyodelling,qqqqqqqqqqq,1,9,val,0\n")
    with pytest.raises(ManifestError, match=r"validate\.csv:3: unknown label 'yodelling'"):
        convert_kinetics({"train": train2, "val": bad_val}, vids, out)
    assert _snapshot(out) == before  # nothing rewritten, no temporary files left


@pytest.mark.parametrize("rows,message", [
    (["abseiling,bbbbbbbbbbb,0,10,train,0", "abseiling,bbbbbbbbbbb,0,10,train,1"],
     r"t\.csv:3: duplicate clip 'bbbbbbbbbbb_000000_000010' \(first on line 2\)"),
    (["abseiling,bbbbbbbbbbb,nan,10,train,0"], r"t\.csv:2: column 'time_start': 'nan' is not a "
                                               r"finite time"),
    (["abseiling,bbbbbbbbbbb,0,inf,train,0"], r"t\.csv:2: column 'time_end': 'inf' is not a "
                                              r"finite time"),
])
def test_kinetics_rows_that_cannot_be_right_stop_with_file_and_line(tmp_path, rows, message):
    path = _write(tmp_path / "t.csv", K_HEADER + "\n".join(rows) + "\n")
    with pytest.raises(ManifestError, match=message):
        read_kinetics_csv(path)


def test_a_clip_in_two_splits_and_undecodable_bytes_are_named(tmp_path, mp4):
    splits, vids = _kinetics(tmp_path, mp4)
    val = _write(tmp_path / "v.csv", K_HEADER + "abseiling,bbbbbbbbbbb,0,10,val,0\n")
    with pytest.raises(ManifestError, match=r"v\.csv:2: clip 'bbbbbbbbbbb_000000_000010' is "
                                            r"also in .*train\.csv:3"):
        convert_kinetics({"train": splits["train"], "val": val}, vids, str(tmp_path / "o"))
    raw = tmp_path / "latin1.csv"
    raw.write_bytes((K_HEADER + "abseiling,bbbbbbbbbbb,0,10,train,0\n").encode()
                    + "caf\xe9,ccccccccccc,0,10,train,0\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"latin1\.csv:3: byte 0xe9 at column 4 is not "
                                            r"valid utf-8-sig text"):
        read_kinetics_csv(str(raw))


def test_written_files_get_the_usual_mode(tmp_path, mp4):
    splits, vids = _kinetics(tmp_path, mp4)
    old = os.umask(0o027)
    try:
        convert_kinetics({"train": splits["train"]}, vids, str(tmp_path / "o"))
    finally:
        os.umask(old)
    for name in ("labels.txt", "train.csv", "missing_train.txt"):
        assert os.stat(tmp_path / "o" / name).st_mode & 0o777 == 0o640, name  # as open() gives
