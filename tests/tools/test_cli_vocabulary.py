"""One command-line vocabulary across the tools (README "Tools"): every tool spells a concept
the same way (``--config-file``, ``--weights``, ``--output``, ``--json``, ``--device``,
``--score-threshold``, ``--groundtruth`` / ``--detections``, ``--task``, trailing ``KEY VALUE``
overrides), and each earlier spelling still works as a hidden deprecated alias that says so."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import tomllib
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from mvit_tasks.utils.cli import (
    DeprecatedAlias,
    UserError,
    add_deprecated_alias,
    resolve_device,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOOLS = {  # tool -> module with build_parser() (and parse_args() where it parses more)
    **{name: f"mvit_tasks.cli.{name}" for name in (
        "train_net", "eval_ava", "eval_coco", "eval_classification", "convert_checkpoint",
        "demo", "analyze_model", "benchmark", "download_weights", "export", "model_zoo",
        "prepare_ava", "prepare_kinetics", "prepare_ssv2", "prepare_imagenet")},
    "demo --task ava": "mvit_tasks.projects.ava.demo",
    "demo --task coco": "mvit_tasks.projects.coco_detection.demo",
    "demo --task classification": "mvit_tasks.projects.video_classification.demo",
}

# the canonical flags each tool (or sub-command) has; "opts": trailing KEY VALUE overrides
CANONICAL = {
    "train_net": {"--task", "--config-file", "--weights", "--device", "opts"},
    "eval_ava": {"--groundtruth", "--detections", "--json", "--iou-threshold"},
    "eval_coco": {"--groundtruth", "--detections", "--json"},
    "eval_classification": {"--json", "--output", "--top-k", "--classes"},
    "convert_checkpoint": set(),  # IN OUT are positional
    "demo": {"--task", "--output", "opts"},
    "analyze_model": {"--config-file", "--json", "opts"},
    "benchmark": {"--device", "--json", "--batch-size"},
    "download_weights": {"--list"},
    "export": {"--task", "--config-file", "--weights", "--output", "--device", "--json",
               "--batch-size", "opts"},
    "model_zoo": set(),
    "prepare_ava validate": {"--root"},
    "prepare_ava frames": {"--output"},
    "prepare_ava demo": {"--output"},
    "prepare_kinetics official": {"--output", "--classes"},
    "prepare_kinetics slowfast-list": {"--output", "--classes"},
    "prepare_ssv2": {"--output"},
    "prepare_imagenet": {"--output", "--classes"},
    "demo --task ava": {"--config-file", "--weights", "--input", "--output", "--device",
                        "--score-threshold", "--top-k", "opts"},
    "demo --task coco": {"--config-file", "--weights", "--input", "--output", "--device",
                         "--score-threshold", "opts"},
    "demo --task classification": {"--task", "--config-file", "--weights", "--input",
                                   "--device", "--json", "--classes", "--top-k", "opts"},
}

# spellings of the canonical concepts that no tool may define except as a deprecated alias
NON_CANONICAL = {"--out", "--output-dir", "--json-out", "--thresh", "--confidence-threshold",
                 "--gt", "--dt", "--cpu", "--class-names", "--topk", "--batch", "--video",
                 "--iou", "--person-thresh", "--config"}

# (tool, the other arguments it needs, old spelling, new spelling, value; None: a flag
# without value that stands for "new const")
ALIASES: List[Tuple[str, List[str], str, str, Optional[List[str]]]] = [
    ("train_net", ["--task", "kinetics"], "--cpu", "--device", None),
    ("eval_ava", ["-g", "g.csv", "-d", "d.csv", "-l", "l.pbtxt"], "--json-out", "--json",
     ["r.json"]),
    ("eval_ava", ["-g", "g.csv", "-d", "d.csv", "-l", "l.pbtxt"], "--iou", "--iou-threshold",
     ["0.3"]),
    ("eval_coco", ["--detections", "d.json"], "--gt", "--groundtruth", ["g.json"]),
    ("eval_coco", ["--groundtruth", "g.json"], "--dt", "--detections", ["d.json"]),
    ("eval_coco", ["-g", "g.json", "-d", "d.json"], "--json-out", "--json", ["m.json"]),
    ("eval_classification", ["--predictions", "p.npz"], "--json-out", "--json", ["m.json"]),
    ("eval_classification", ["--predictions", "p.npz"], "--output-dir", "--output", ["rep"]),
    ("eval_classification", ["--predictions", "p.npz"], "--topk", "--top-k", ["1", "3"]),
    ("demo", ["--quickstart"], "--out", "--output", ["o"]),
    ("analyze_model", ["--variant", "mvitv2_t"], "--json-out", "--json", ["a.json"]),
    ("benchmark", [], "--out", "--json", ["b.json"]),
    ("benchmark", [], "--batch", "--batch-size", ["4"]),
    ("export", ["--variant", "mvitv2_t"], "--json-out", "--json", ["s.json"]),
    ("prepare_ava", ["frames", "--videos", "v"], "--out", "--output", ["o"]),
    ("prepare_ava", ["demo"], "--out", "--output", ["o"]),
    ("prepare_kinetics", ["official", "--video-root", "v"], "--out", "--output", ["o"]),
    ("prepare_kinetics", ["slowfast-list", "--list", "l"], "--out", "--output", ["o.csv"]),
    ("prepare_ssv2", ["--annotations", "a"], "--out", "--output", ["o"]),
    ("prepare_imagenet", ["--root", "r"], "--out", "--output", ["o"]),
    ("demo --task ava", ["--config-file", "c.yaml", "--output", "o"], "--video", "--input",
     ["v.mp4"]),
    ("demo --task ava", ["--config-file", "c.yaml", "--input", "v.mp4", "--output", "o"],
     "--thresh", "--score-threshold", ["0.1"]),
    ("demo --task ava", ["--config-file", "c.yaml", "--input", "v.mp4", "--output", "o"],
     "--person-thresh", "--person-score-threshold", ["0.9"]),
    ("demo --task ava", ["--config-file", "c.yaml", "--input", "v.mp4", "--output", "o"],
     "--cpu", "--device", None),
    ("demo --task coco", ["--config-file", "c.yaml", "--output", "o", "--input", "a.png"],
     "--confidence-threshold", "--score-threshold", ["0.2"]),
    ("demo --task coco", ["--config-file", "c.yaml", "--output", "o", "--input", "a.png"],
     "--cpu", "--device", None),
    ("demo --task classification", ["--task", "kinetics", "--input", "v.mp4"],
     "--class-names", "--classes", ["names.txt"]),
    ("demo --task classification", ["--task", "kinetics", "--input", "v.mp4"], "--cpu",
     "--device", None),
]


def _module(tool: str):
    return importlib.import_module(TOOLS[tool])


def _parse(tool: str, argv: List[str]) -> argparse.Namespace:
    """What the tool itself parses ``argv`` to (its parse_args, which may do more)."""
    module = _module(tool)
    parse = getattr(module, "parse_args", None)
    return parse(argv) if parse else module.build_parser().parse_args(argv)


def _parsers(name: str, parser: argparse.ArgumentParser
             ) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    """``parser`` and its sub-commands' parsers (``"prepare_ava frames"``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
    for sub in subs:
        for cmd, sub_parser in sub.choices.items():
            yield from _parsers(f"{name} {cmd}", sub_parser)


def all_parsers() -> Dict[str, argparse.ArgumentParser]:
    return {name: p for tool in TOOLS
            for name, p in _parsers(tool, _module(tool).build_parser())}


def _flags(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """Option string (or a positional's dest) -> its action."""
    out: Dict[str, argparse.Action] = {}
    for action in parser._actions:
        for name in action.option_strings or [action.dest]:
            out[name] = action
    return out


def test_every_console_script_is_covered():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    modules = {target.split(":")[0] for target in scripts.values()}
    assert modules == {m for m in TOOLS.values() if m.startswith("mvit_tasks.cli.")}
    assert set(all_parsers()) == set(CANONICAL)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_flags_exist(name):
    flags = _flags(all_parsers()[name])
    missing = {f for f in CANONICAL[name] if f not in flags}
    assert not missing, f"{name}: no {sorted(missing)}"
    for flag in CANONICAL[name] - {"opts"}:
        assert not isinstance(flags[flag], DeprecatedAlias), flag
    if "opts" in flags:
        assert flags["opts"].nargs == argparse.REMAINDER


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_no_other_spelling_of_a_canonical_concept(name):
    parser = all_parsers()[name]
    for action in parser._actions:
        alias = isinstance(action, DeprecatedAlias)
        for flag in action.option_strings:
            if alias:  # hidden, and an alias of a flag of the same parser
                assert action.help is argparse.SUPPRESS
                assert action.canonical.split()[0] in _flags(parser), flag
                continue
            assert flag not in NON_CANONICAL, f"{name}: {flag} is not deprecated"
            assert not re.fullmatch(r"--[\w-]*thresh", flag), f"{name}: {flag}: use -threshold"
            assert not re.fullmatch(r"--json-[\w-]+|--[\w-]*-out|--out-[\w-]+", flag), (
                f"{name}: {flag}: use --json / --output")


@pytest.mark.parametrize("tool, base, old, new, value", ALIASES,
                         ids=[f"{t}:{o}" for t, _, o, _, _ in ALIASES])
def test_old_spelling_parses_like_the_new_one_with_a_note(capsys, tool, base, old, new, value):
    new_argv = [new, *(value if value is not None else [_const(tool, old)])]
    canonical = _parse(tool, [*base, *new_argv])
    assert capsys.readouterr().err == ""
    deprecated = _parse(tool, [*base, old, *(value or [])])
    assert vars(deprecated) == vars(canonical)
    note = f"{old} is deprecated; use {' '.join(new_argv) if value is None else new}"
    assert capsys.readouterr().err.splitlines() == [note]


def _const(tool: str, old: str) -> str:
    for _, parser in _parsers(tool, _module(tool).build_parser()):
        action = _flags(parser).get(old)
        if action is not None:
            return action.const
    raise KeyError(old)


@pytest.mark.parametrize("tool, base, old, new, value", ALIASES,
                         ids=[f"{t}:{o}" for t, _, o, _, _ in ALIASES])
def test_old_spellings_stay_out_of_help(tool, base, old, new, value):
    for name, parser in _parsers(tool, _module(tool).build_parser()):
        text = parser.format_help()
        assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", text), (name, old)


def test_an_alias_of_a_required_flag_satisfies_it_and_not_both():
    p = argparse.ArgumentParser()
    p.add_argument("--groundtruth", "-g", required=True)
    add_deprecated_alias(p, "--gt", "--groundtruth")
    assert p.parse_args(["--gt", "a"]).groundtruth == "a"
    assert "--groundtruth GROUNDTRUTH" in p.format_usage()  # still shown as required
    assert "[--groundtruth" not in p.format_usage()
    with pytest.raises(SystemExit):
        p.parse_args([])
    with pytest.raises(SystemExit):
        p.parse_args(["--gt", "a", "-g", "b"])


def test_flags_may_follow_the_overrides(capsys):
    args = _parse("train_net", ["A.B", "1", "--num-gpus", "2", "C.D", "-1e-4", "--cpu", "E.F",
                                "x", "--config-file", "c.yaml", "--task", "kinetics"])
    assert (args.num_gpus, args.device, args.config_file, args.task) == (
        2, "cpu", "c.yaml", "kinetics")
    assert args.opts == ["A.B", "1", "C.D", "-1e-4", "E.F", "x"]  # in order; -1e-4 a VALUE
    assert capsys.readouterr().err == "--cpu is deprecated; use --device cpu\n"  # once
    after_dashes = _parse("analyze_model", ["--config-file", "c.yaml", "--", "A.B", "1",
                                            "--json", "x"])
    assert after_dashes.opts == ["A.B", "1", "--json", "x"] and after_dashes.json is None
    for tool in ("demo --task coco", "demo --task classification"):  # --input INPUT...
        base = ["--task", "kinetics"] if tool.endswith("classification") else [
            "--config-file", "c.yaml", "--output", "o"]
        args = _parse(tool, [*base, "--input", "a.png", "b.png", "A.B", "1",
                             "--device", "cpu", "C.D", "2", "--weights", "w.pth"])
        assert (args.input, args.opts, args.device, args.weights) == (
            ["a.png", "b.png"], ["A.B", "1", "C.D", "2"], "cpu", "w.pth")
    ava = _parse("demo --task ava", ["--config-file", "c", "--input", "v.mp4", "--output", "o",
                                     "AVA.FPS", "30", "--score-threshold", "0"])
    assert ava.opts == ["AVA.FPS", "30"] and ava.score_threshold == 0.0
    quick = _parse("demo", ["--quickstart", "SOLVER.MAX_EPOCH", "1", "--output", "o"])
    assert quick.opts == ["SOLVER.MAX_EPOCH", "1"] and quick.output == "o"


def test_train_net_weights_and_device():
    from mvit_tasks.cli import train_net

    train = _parse("train_net", ["--task", "kinetics", "--weights", "w.pth", "A.B", "1"])
    assert train_net.config_opts(train) == ["A.B", "1", "MODEL.WEIGHTS", "w.pth"]
    evaluate = _parse("train_net", ["--task", "kinetics", "--eval-only", "--weights", "w.pth"])
    assert train_net.config_opts(evaluate) == []  # evaluated as TEST.CHECKPOINT_FILE_PATH is
    with pytest.raises(SystemExit):
        _parse("train_net", ["--task", "kinetics", "--eval-only", "--resume", "--weights", "w"])
    train_net.check_device(_parse("train_net", ["--task", "k", "--device", "cpu",
                                                "--num-gpus", "2"]))
    with pytest.raises(UserError):
        train_net.check_device(_parse("train_net", ["--task", "k", "--device", "cuda:0",
                                                    "--num-gpus", "2"]))


def test_resolve_device():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_readme_has_one_table_of_every_tool():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Tools\n", 1)[1].split("\n## ", 1)[0]
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    for script, target in scripts.items():
        module = target.split(":")[0].rsplit(".", 1)[1]
        wrapper = (f"datasets/{module}.py" if module.startswith("prepare_")
                   else f"tools/{module}.py")
        assert f"`{script}`" in section and f"`{wrapper}`" in section, script
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    for old in NON_CANONICAL:  # the table shows the canonical spellings only
        assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", table), old
