"""torch.compile: the models trace as one graph (train and eval, video and image, the engine's
batch-dict model), compiled outputs and gradients equal eager, checkpoints keep plain key names
and load either way, and ``MODEL.COMPILE True`` trains and evaluates through tools/train_net.py.

The fast tests compile with the ``aot_eager`` backend (dynamo + AOTAutograd, no code
generation: seconds); the ``slow`` ones with the default inductor backend (minutes on 2 CPUs).
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
import torch
import torch._dynamo

from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.engine.optim import unwrap_model
from mvit_tasks.export import maybe_compile
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.projects.video_classification.tests import test_task as project_tests


def _video(**kw: Any) -> Classifier:
    """MViTv2-S 16x4 layout, 2 blocks: rel-pos (t, h, w), residual pooling, cls token."""
    arch = get_variant("mvitv2_s_16x4").arch.shallow(2).replace(num_frames=4,
                                                                 spatial_size=(64, 64), **kw)
    return Classifier.from_arch(arch, 5, dropout=0.3)


def _image(**kw: Any) -> Classifier:
    """MViTv2-T layout, 2 blocks, 2-D input, mean pooling."""
    arch = get_variant("mvitv2_t").arch.shallow(2).replace(spatial_size=(64, 64), **kw)
    return Classifier.from_arch(arch, 5)


def _randomize(model: torch.nn.Module) -> None:
    """Non-trivial weights: noise on every tensor, so rel-pos tables and norms matter."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))


CASES = {
    "video": (_video, (2, 3, 4, 64, 64)),
    "image": (_image, (2, 3, 64, 64)),
    "video_drop_path_act_checkpoint": (
        functools.partial(_video, drop_path_rate=0.5, act_checkpoint=True), (2, 3, 4, 64, 64)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_one_graph_without_breaks(name: str, train: bool) -> None:
    build, shape = CASES[name]
    model = build().train(train)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(torch.randn(shape))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_the_engines_batch_dict_model_has_no_graph_break() -> None:
    from mvit_tasks.projects.video_classification.model import ClipClassifier

    arch = get_variant("mvitv2_s_16x4").arch.shallow(2).replace(num_frames=4,
                                                                 spatial_size=(64, 64))
    model = ClipClassifier.from_arch(arch, 5)
    batch = {"video": torch.randn(2, 3, 4, 64, 64), "label": torch.tensor([1, 3]),
             "video_id": ["a", "b"], "num_samples": 2, "skipped": []}
    for train in (True, False):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(model.train(train))(batch)
        assert explanation.graph_break_count == 0, explanation.break_reasons


def _outputs_and_grads(model: torch.nn.Module, x: torch.Tensor):
    y = model(x)
    y.square().mean().backward()
    grads = [p.grad.clone() for p in unwrap_model(model).parameters()]
    unwrap_model(model).zero_grad(set_to_none=True)
    return y.detach(), grads


def _check_compiled_equals_eager(backend: str, shape_name: str) -> None:
    build, shape = CASES[shape_name]
    model = build()
    _randomize(model)
    model.eval()  # no dropout / drop path: deterministic, gradients still flow
    x = torch.randn(shape)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    y_ref, g_ref = _outputs_and_grads(model, x)
    y, g = _outputs_and_grads(compiled, x)
    scale = y_ref.abs().max()
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-5 * max(1.0, float(scale)))
    for a, b in zip(g, g_ref):  # fused kernels sum in another order: ~1e-4 of the gradient
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * max(1.0, float(b.abs().max())))
    with torch.no_grad():  # the inference graph too
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=1e-5 * max(1.0, float(scale)))


def test_fullgraph_compile_equals_eager_forward_and_backward() -> None:
    _check_compiled_equals_eager("aot_eager", "video")


@pytest.mark.slow
def test_inductor_compile_equals_eager_forward_and_backward() -> None:
    _check_compiled_equals_eager("inductor", "video")


def test_maybe_compile_follows_the_config_and_shares_the_weights() -> None:
    model = _image()
    off = SimpleNamespace(MODEL=SimpleNamespace(COMPILE=False))
    on = SimpleNamespace(MODEL=SimpleNamespace(COMPILE=True))
    assert maybe_compile(model, off) is model
    compiled = maybe_compile(model, on)
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert maybe_compile(compiled, on) is compiled  # not wrapped twice
    assert unwrap_model(compiled) is model
    assert all(a is b for a, b in zip(compiled.parameters(), model.parameters()))


def test_state_dict_names_of_a_compiled_model_and_loading_either_way(tmp_path) -> None:
    model = _video().eval()
    _randomize(model)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    plain = list(model.state_dict())
    assert list(compiled.state_dict()) == ["_orig_mod." + k for k in plain]
    assert list(unwrap_model(compiled).state_dict()) == plain  # what the engine saves
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        ref = model(x)
    # a file written from the compiled wrapper (prefixed names) loads into a plain model ...
    path = tmp_path / "compiled_state.pth"
    torch.save(compiled.state_dict(), path)
    other = _video().eval()
    report = load_weights(other, str(path))
    assert not report.missing and not report.unexpected
    with torch.no_grad():
        torch.testing.assert_close(other(x), ref, rtol=0, atol=0)
    # ... also under DDP's prefix, in either order
    torch.save({"model": {"module." + k: v for k, v in compiled.state_dict().items()}}, path)
    load_weights(_video(), str(path))
    # and plain names load into the module a compiled wrapper runs
    fresh = _video().eval()
    fresh_compiled = torch.compile(fresh, backend="aot_eager")
    unwrap_model(fresh_compiled).load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh_compiled(x), ref, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------- through train_net
# the classification project's tiny-run setup: its overrides, in-process train_net, and the
# fixture of 18 generated mp4 clips (12 train, 6 val)
FAST, DEMO, _train_net = project_tests.FAST, project_tests.DEMO, project_tests._train_net
clips = project_tests.clips


def _compiled_run(clips, out, monkeypatch, backend: str) -> Dict[str, Any]:
    """train_net with MODEL.COMPILE True (the run's torch.compile calls are recorded)."""
    calls: List[str] = []
    real = torch.compile

    def recording(model, *args, **kwargs):
        calls.append(type(model).__name__)
        if backend != "inductor":
            kwargs["backend"] = backend
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", recording)
    torch._dynamo.reset()
    report = _train_net()(["--task", "classification", "--config-file", DEMO, *FAST,
                           "CLS.DATA_DIR", str(clips), "MODEL.COMPILE", "True",
                           "OUTPUT_DIR", str(out)])
    report["compile_calls"] = calls
    return report


def _check_compiled_run(clips, tmp_path, monkeypatch, backend: str) -> None:
    out = tmp_path / "run"
    report = _compiled_run(clips, out, monkeypatch, backend)
    assert report["iterations"] == 3
    assert report["compile_calls"] == ["ClipClassifier", "ClipClassifier"]  # train, evaluation
    assert report["results"]["classification"]["num_videos"] == 6
    state = load_checkpoint_file(str(out / "checkpoints" / "last.pth"))
    assert state["model"] and not any(k.startswith("_orig_mod.") for k in state["model"])
    assert "backbone.patch_embed.proj.weight" in state["model"]
    # the checkpoint evaluates without compile to the run's own results
    monkeypatch.undo()
    again = _train_net()(["--task", "classification", "--config-file", DEMO, "--eval-only",
                          *FAST, "CLS.DATA_DIR", str(clips),
                          "TEST.CHECKPOINT_FILE_PATH", str(out / "checkpoints" / "last.pth"),
                          "OUTPUT_DIR", str(tmp_path / "eval")])
    ours, theirs = report["results"]["classification"], again["results"]["classification"]
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-4), key


def test_train_net_with_model_compile(clips, tmp_path, monkeypatch) -> None:
    _check_compiled_run(clips, tmp_path, monkeypatch, "aot_eager")


@pytest.mark.slow
def test_train_net_with_model_compile_inductor(clips, tmp_path, monkeypatch) -> None:
    _check_compiled_run(clips, tmp_path, monkeypatch, "inductor")
