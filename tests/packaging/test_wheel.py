"""The wheel as a user gets it: built from the sources, installed into a fresh virtual
environment, and run from a directory outside the checkout.

The fresh environment has no pip and no copy of the dependencies: a ``.pth`` file points it at
this environment's site-packages for torch and the rest (a ``.pth`` line only extends
``sys.path``; the editable install of the checkout, which needs its own ``.pth`` hook, stays
inactive there). The wheel goes in with this environment's pip (``--python``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "mvit_tasks", "projects",
           "configs")
SCRIPTS = ("mvit-train", "mvit-eval-ava", "mvit-eval-coco", "mvit-eval-classification",
           "mvit-convert", "mvit-demo", "mvit-analyze", "mvit-benchmark", "mvit-download-weights",
           "mvit-export", "mvit-model-zoo", "mvit-prepare-ava", "mvit-prepare-kinetics",
           "mvit-prepare-ssv2", "mvit-prepare-imagenet")

pytestmark = pytest.mark.slow


def _run(cmd, cwd, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(wheel path, fresh venv's bin/, a working directory outside the checkout)``."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp / "dist"), str(src)], cwd=str(tmp))
    (wheel,) = (tmp / "dist").glob("mvit_tasks-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=str(tmp))
    fresh = subprocess.check_output(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], text=True).strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(fresh, "_test_dependencies.pth"), "w") as f:
        f.write("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
          "--no-deps", "--no-index", str(wheel)], cwd=str(tmp))
    work = tmp / "work"
    work.mkdir()
    return wheel, venv / "bin", work


def test_wheel_contents(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"mvit_tasks", wheel.name.split("-py3")[0]
                                                + ".dist-info"}  # no top-level `projects`
    repo_yaml = sorted(os.path.relpath(os.path.join(d, f), ROOT)
                       for top in ("projects", "configs")
                       for d, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs
                       if f.endswith(".yaml"))
    assert repo_yaml and all("mvit_tasks/" + y.replace(os.sep, "/") in names for y in repo_yaml)
    assert "mvit_tasks/data/classnames/kinetics400.txt" in names
    assert not [n for n in names if "/tests/" in n]
    meta = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/METADATA")
    requires = [line for line in meta.decode().splitlines() if line.startswith("Requires-Dist")]
    assert not [r for r in requires if "==" in r.split(";")[0]], requires  # ranges, not pins
    assert not [r for r in requires if "pytorchvideo" in r and "extra ==" not in r]


def test_installed_package_runs_outside_the_checkout(installed):
    _, bin_dir, work = installed
    python = str(bin_dir / "python")
    assert all((bin_dir / s).is_file() for s in SCRIPTS)
    probe = (
        "import json, mvit_tasks, mvit_tasks.projects.ava.task as t\n"
        "from mvit_tasks.config import load_config\n"
        "from mvit_tasks.engine.defaults import add_engine_config\n"
        "from mvit_tasks.tasks import list_tasks, resolve_task\n"
        "task = resolve_task('ava')\n"
        "cfg = load_config('ava/mvitv2_s_16x4_k400', extra_config_fns=[add_engine_config, "
        "task.add_config])\n"
        "try:\n    import projects\n    top = True\nexcept ImportError:\n    top = False\n"
        "print(json.dumps({'pkg': mvit_tasks.__file__, 'ava': t.__file__, 'tasks': list_tasks(),"
        " 'variant': cfg.MODEL.VARIANT, 'frames': cfg.DATA.NUM_FRAMES, 'classes': "
        "cfg.MODEL.NUM_CLASSES, 'top_projects': top}))\n")
    info = json.loads(_run([python, "-c", probe], cwd=str(work)).strip().splitlines()[-1])
    site = os.path.dirname(os.path.dirname(info["pkg"]))
    assert not info["pkg"].startswith(ROOT) and info["ava"].startswith(site)
    assert set(info["tasks"]) >= {"ava", "coco", "classification", "kinetics", "ssv2"}
    # the recipe's _BASE_ ../../../configs/backbones/mvitv2_s_16x4.yaml resolved in the package
    assert (info["variant"], info["frames"], info["classes"]) == ("mvitv2_s_16x4", 16, 80)
    assert info["top_projects"] is False
    listed = _run([str(bin_dir / "mvit-train"), "--list-configs"], cwd=str(work))
    assert "projects/coco_detection/configs/mask_rcnn_mvitv2_t_3x.yaml" in listed
    for script in ("mvit-eval-ava", "mvit-eval-coco", "mvit-demo", "mvit-download-weights"):
        assert "usage" in _run([str(bin_dir / script), "--help"], cwd=str(work)).lower()


def test_tiny_training_from_the_installed_package(installed):
    _, bin_dir, work = installed
    out = work / "run"
    _run([str(bin_dir / "mvit-train"), "--task", "classification", "--config-file",
          "demo_moving_shapes", "OUTPUT_DIR", str(out), "CLS.DATA_DIR", str(work / "clips"),
          "SOLVER.MAX_EPOCH", "1", "CLS.DEMO_TRAIN_PER_CLASS", "2", "CLS.DEMO_VAL_PER_CLASS", "1",
          "TRAIN.BATCH_SIZE", "4", "TRAIN.EVAL_PERIOD", "1"], cwd=str(work))
    report = json.loads((out / "final_report.json").read_text())
    assert report["task"] == "classification" and report["iterations"] == 3
    assert report["results"]["classification"]["num_videos"] == 6  # 6 classes x 1 held out
    assert (work / "clips" / "train.csv").is_file()
