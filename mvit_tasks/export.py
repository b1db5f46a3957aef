"""Graph capture of MViT models: ``torch.export`` (``.pt2``) and ONNX files for deployment, and
``torch.compile`` for training and testing (``MODEL.COMPILE``).

The backbone has no graph breaks (``torch._dynamo.explain`` finds one graph, tested), so
``torch.export.export`` captures a classifier whole, with the batch dimension dynamic.
ONNX goes through the dynamo-based exporter (``torch.onnx.export(exported_program,
dynamo=True)``), which needs the optional ``onnx`` and ``onnxscript`` packages; parity against
``onnxruntime`` runs when that is installed. ``tools/export.py`` is the command line.

``torch.compile`` wraps a module in an ``OptimizedModule`` whose ``state_dict()`` keys carry an
``_orig_mod.`` prefix: the engine compiles only the module it runs (the forward), and saves the
original module, so checkpoints keep the plain names (the checkpoint loader strips the prefix of
files written by other code).
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["maybe_compile", "example_input", "export_program", "load_program", "export_onnx",
           "onnx_available", "onnxruntime_available", "onnxruntime_outputs", "difference"]


def maybe_compile(model: nn.Module, cfg: Any) -> nn.Module:
    """``torch.compile(model)`` when ``cfg.MODEL.COMPILE`` is set, else ``model`` itself.

    The compiled wrapper shares ``model``'s parameters and buffers (weight updates, EMA swaps
    and loads into ``model`` are seen by it); wrappers of one module share the compiled code.
    Save and load ``model``, not the wrapper (whose keys are ``_orig_mod.``-prefixed).
    """
    if not cfg.MODEL.COMPILE or isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        return model
    return torch.compile(model)


def example_input(arch: Any, batch_size: int = 2, input_size: Optional[Sequence[int]] = None,
                  device: Any = "cpu", seed: Optional[int] = None) -> torch.Tensor:
    """A random ``B x C x T x H x W`` clip (``B x C x H x W`` for image models) of the
    architecture's geometry (``arch.num_frames``, ``arch.spatial_size``, ``arch.in_chans``), or
    of ``input_size`` (``T H W`` / ``H W``; ``H W`` keeps the frames of a video model)."""
    size: List[int] = [arch.num_frames, *arch.spatial_size] if arch.video \
        else list(arch.spatial_size)
    if input_size:
        size = list(input_size)
        if arch.video and len(size) == 2:
            size = [arch.num_frames] + size
        if len(size) != (3 if arch.video else 2):
            raise ValueError(f"the input size of this {'video' if arch.video else 'image'} "
                             f"model is {'T H W' if arch.video else 'H W'}, got {list(input_size)}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.randn(batch_size, arch.in_chans, *size, generator=g).to(device)


def _dynamic_shapes(dynamic_batch: bool) -> Optional[Tuple[Dict[int, Any]]]:
    return ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None


def export_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True
                   ) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` (put in eval mode) on ``example``.

    With ``dynamic_batch`` the batch dimension is symbolic (``example`` needs a batch of at
    least 2: torch.export specialises a size of 1); the other dimensions are fixed.
    """
    if dynamic_batch and example.shape[0] < 2:
        raise ValueError("a dynamic batch needs an example batch of at least 2 (torch.export "
                         "specialises size 1); use a batch of 2 or a static batch")
    model.eval()
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes(dynamic_batch))


def load_program(path: str) -> torch.export.ExportedProgram:
    """An exported program saved with ``torch.export.save`` (a ``.pt2`` file)."""
    return torch.export.load(path)


def onnx_available() -> bool:
    """Whether ONNX export can run (the optional ``onnx`` and ``onnxscript`` packages)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` (optional) is installed for the ONNX parity check."""
    return importlib.util.find_spec("onnxruntime") is not None


def export_onnx(program: torch.export.ExportedProgram, path: str, input_name: str = "input"
                ) -> None:
    """Write ``program`` (from :func:`export_program`) as an ONNX file (opset of torch's
    dynamo exporter; weights over 2 GB go to an external data file next to it). The graph's
    input is ``input_name`` (``B x C x [T x] H x W``; the batch is dynamic when it is in
    ``program``), its output ``logits``."""
    if not onnx_available():
        raise ModuleNotFoundError("ONNX export needs the optional packages onnx and onnxscript "
                                  "(pip install onnx onnxscript onnxruntime)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx_program = torch.onnx.export(program, f=None, dynamo=True, verbose=False,
                                     input_names=[input_name], output_names=["logits"])
    onnx_program.save(path)


def onnxruntime_outputs(path: str, x: torch.Tensor) -> torch.Tensor:
    """The ONNX file's output for ``x``, run by onnxruntime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})[0]
    return torch.from_numpy(out)


def difference(output: torch.Tensor, reference: torch.Tensor) -> Dict[str, float]:
    """``{"max_abs": max |output - reference|, "max_rel": max_abs / max |reference|,
    "max_ref": max |reference|}`` (float64; shapes must agree)."""
    if tuple(output.shape) != tuple(reference.shape):
        raise ValueError(f"output shape {tuple(output.shape)} != reference "
                         f"{tuple(reference.shape)}")
    a, b = output.detach().double().cpu(), reference.detach().double().cpu()
    max_abs = float((a - b).abs().max()) if a.numel() else 0.0
    max_ref = float(b.abs().max()) if b.numel() else 0.0
    return {"max_abs": max_abs, "max_rel": max_abs / max(max_ref, 1e-12), "max_ref": max_ref}
