"""Exponential moving average (EMA) of model weights for evaluation.

Semantics follow timm's ``ModelEmaV3`` (``timm/utils/model_ema.py``; ``--model-ema``,
``--model-ema-decay``) and TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` warm-up:
after the ``n``-th update (``n = 1, 2, ...``)

    ``ema = d_n * ema + (1 - d_n) * w``,  ``d_n = decay`` or, with ``warmup``,
    ``d_n = min(decay, (1 + n) / (10 + n))``,

starting from ``ema = w_0`` (the weights at construction). SlowFast has no EMA.

The shadow copy is a dict of fp32 tensors keyed like the *unwrapped* model's ``state_dict()``
(no ``module.`` / ``_orig_mod.`` prefix), not a second module: evaluate it by swapping it into
the training model with :meth:`ModelEMA.apply_to` (restores the live weights afterwards) or copy
it for good with :meth:`ModelEMA.copy_to`.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch import nn

from .optim import unwrap_model


class ModelEMA:
    """fp32 EMA of a model's floating-point parameters (and, optionally, buffers).

    Args:
        model: the model to track (DDP / DataParallel / compiled wrappers are unwrapped).
        decay: the EMA decay ``d`` (timm's default 0.9998; 0.9999 here as commonly used).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` so early weights are not frozen in.
        average_buffers: also average floating-point buffers (BatchNorm running stats). When
            False (default) buffers are copied from the model at each update. Integer buffers
            (``num_batches_tracked``) are always copied.
        device: where the shadow lives (default: next to each model tensor).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = False,
                 average_buffers: bool = False, device: Optional[torch.device] = None) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.average_buffers = bool(average_buffers)
        self.device = device
        self.num_updates = 0
        module = unwrap_model(model)
        self._averaged = self._averaged_names(module)
        self.shadow: Dict[str, torch.Tensor] = OrderedDict()
        with torch.no_grad():
            for name, t in module.state_dict(keep_vars=False).items():
                self.shadow[name] = self._to_shadow(name, t)

    # ----------------------------------------------------------------------------- helpers
    def _averaged_names(self, module: nn.Module) -> set:
        names = {n for n, p in module.named_parameters() if p.is_floating_point()}
        if self.average_buffers:
            names |= {n for n, b in module.named_buffers() if b.is_floating_point()}
        return names

    def _to_shadow(self, name: str, t: torch.Tensor) -> torch.Tensor:
        dev = self.device if self.device is not None else t.device
        t = t.detach()
        if name in self._averaged:
            return t.to(device=dev, dtype=torch.float32, copy=True)
        return t.to(device=dev, copy=True)

    def _model_tensors(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        state = unwrap_model(model).state_dict(keep_vars=True)
        missing = [k for k in self.shadow if k not in state]
        extra = [k for k in state if k not in self.shadow]
        if missing or extra:
            raise KeyError(f"model does not match the EMA: missing {missing[:5]}, "
                           f"unexpected {extra[:5]}")
        return state

    def decay_at(self, n: int) -> float:
        """Decay used by the ``n``-th update (1-based)."""
        if self.warmup:
            return min(self.decay, (1.0 + n) / (10.0 + n))
        return self.decay

    # ------------------------------------------------------------------------------ update
    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights (call after ``optimizer.step()``)."""
        state = self._model_tensors(model)
        self.num_updates += 1
        d = self.decay_at(self.num_updates)
        avg_s: List[torch.Tensor] = []
        avg_m: List[torch.Tensor] = []
        for name, s in self.shadow.items():
            t = state[name].detach()
            if name in self._averaged:
                avg_s.append(s)
                avg_m.append(t.to(device=s.device, dtype=torch.float32))
            else:
                s.copy_(t)
        if avg_s:
            torch._foreach_mul_(avg_s, d)
            torch._foreach_add_(avg_s, avg_m, alpha=1.0 - d)

    # --------------------------------------------------------------------------- using it
    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the EMA (cast to each tensor's dtype / device)."""
        state = self._model_tensors(model)
        for name, s in self.shadow.items():
            state[name].data.copy_(s.to(device=state[name].device, dtype=state[name].dtype))

    @contextlib.contextmanager
    def apply_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context manager: ``model`` holds the EMA weights inside, its own weights after.

        Example: ``with ema.apply_to(model): results = evaluate(model)``.
        """
        state = self._model_tensors(model)
        backup = {k: v.detach().clone() for k, v in state.items()}
        try:
            self.copy_to(model)
            yield model
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    state[k].data.copy_(v)

    def ema_state_dict(self) -> Dict[str, torch.Tensor]:
        """The EMA weights as a model ``state_dict`` (fp32 for averaged tensors)."""
        return OrderedDict((k, v.clone()) for k, v in self.shadow.items())

    # ---------------------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": OrderedDict((k, v.clone()) for k, v in self.shadow.items()),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Exact resume: shadow tensors and update count (decay / warmup stay as constructed)."""
        shadow = state["shadow"]
        missing = [k for k in self.shadow if k not in shadow]
        extra = [k for k in shadow if k not in self.shadow]
        if missing or extra:
            raise KeyError(f"EMA state does not match the model: missing {missing[:5]}, "
                           f"unexpected {extra[:5]}")
        with torch.no_grad():
            for k, s in self.shadow.items():
                if tuple(shadow[k].shape) != tuple(s.shape):
                    raise ValueError(f"EMA tensor {k!r}: shape {tuple(shadow[k].shape)} in the "
                                     f"checkpoint, {tuple(s.shape)} in the model")
                s.copy_(shadow[k].to(device=s.device, dtype=s.dtype))
        self.num_updates = int(state["num_updates"])
