"""The Task contract: one registered class bundles a task's config keys, model, data and metrics.

``tools/train_net.py --task NAME`` resolves ``NAME`` (see :mod:`mvit_tasks.tasks`) and hands
the task to the engine, which knows nothing else about it (detectron2's "trainer + mapper +
evaluator", PySlowFast's task flags, folded into one object).

Model I/O (what the engine relies on):

- ``model(batch)`` in ``train()`` mode returns ``Dict[str, Tensor]`` of scalar losses; the
  engine back-propagates their sum.
- ``model(batch)`` in ``eval()`` mode returns the outputs that the task's evaluator consumes
  through ``evaluator.process(batch, outputs)``.
- ``batch`` is what the task's ``collate_fn`` makes of dataset samples: a dict that holds
  ``"num_samples"`` (int) and ``"skipped"`` (list of ``(path, reason)``), plus tensors that
  the engine moves to the device (nested lists / dicts included).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, List, Optional

from torch import nn
from torch.utils.data import Dataset

from mvit_tasks.config import CfgNode
from mvit_tasks.evaluation import DatasetEvaluator


class HookBase:
    """Behaviour added to the training loop (:class:`mvit_tasks.engine.train_loop.TrainLoop`);
    every method is optional. The loop calls the hooks in order at::

        before_train
        for each step:  before_step, [forward + backward of the micro-batches],
                        after_backward, [optimizer step; iteration += 1], after_step
        after each epoch: after_epoch
        after_train

    ``trainer`` exposes ``cfg``, ``model`` (unwrapped), ``optimizer``, ``epoch``,
    ``iteration`` (steps done), ``batch_in_epoch``, ``max_iter``, ``output_dir``,
    ``log(dict)`` (a metrics record) and ``last_step`` (the step's losses and sample counts).

    ``after_epoch`` is recorded as pending in every checkpoint written before it returns: after
    a kill, ``--resume`` calls it again for the same epoch (at least once). ``state_dict()`` is
    saved in every training checkpoint and given back to ``load_state_dict`` on resume.
    """

    def before_train(self, trainer: Any) -> None:
        pass

    def before_step(self, trainer: Any) -> None:
        pass

    def after_backward(self, trainer: Any) -> None:
        pass

    def after_step(self, trainer: Any) -> None:
        pass

    def after_epoch(self, trainer: Any) -> None:
        pass

    def after_train(self, trainer: Any) -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


class Task:
    """Base class of every task. Subclass, fill in the ``build_*`` methods, register it::

        @TASK_REGISTRY.register("my_task")
        class MyTask(Task):
            ...

    Attributes:
        name: set by the registry lookup (``resolve_task``) to the name it was found under.
        default_metric: metric (``"metric"`` or ``"task/metric"``) maximised for the ``best``
            checkpoint when ``TRAIN.BEST_METRIC`` is empty.
        find_unused_parameters: passed to DistributedDataParallel.
    """

    name: ClassVar[str] = ""
    default_metric: ClassVar[str] = ""
    find_unused_parameters: ClassVar[bool] = False

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        """Add this task's keys (in its own namespace) to ``cfg`` in place."""

    @classmethod
    def from_official_config(cls, view: Any, warnings: List[str]
                             ) -> Optional[Dict[str, Dict[str, Any]]]:
        """This task's keys ``{section: {key: value}}`` for an official (SlowFast) config that
        describes a model of this task, else None (the default: classification configs are
        translated by core). ``view(section, key)`` reads a value over SlowFast's defaults
        (:class:`mvit_tasks.checkpoint.official_config.OfficialView`); append what is not
        carried over to ``warnings``. Used by ``tools/convert_checkpoint.py --source-config``."""
        return None

    def __init__(self, cfg: CfgNode) -> None:
        self.cfg = cfg

    def prepare_demo_data(self, namespace: str, generate: Callable[[str], Any]) -> None:
        """When ``cfg.<namespace>.DEMO_DATA`` is set, run ``generate(cfg.<namespace>.DATA_DIR)``
        on the main process (generators reuse a complete folder) while the other ranks wait."""
        from mvit_tasks.utils import comm

        node = getattr(self.cfg, namespace)
        if not node.DEMO_DATA:
            return
        if not node.DATA_DIR:
            raise ValueError(f"{namespace}.DEMO_DATA needs {namespace}.DATA_DIR (where to write "
                             "the generated demo set)")
        if comm.is_main_process():
            generate(node.DATA_DIR)
        comm.synchronize()

    # ------------------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        """The model, with ``MODEL.WEIGHTS`` (pre-training) already loaded if set."""
        raise NotImplementedError

    def load_eval_weights(self, model: nn.Module, path: str) -> None:
        """Weights for ``--eval-only``: a training checkpoint of this engine, or any format the
        core converters know (the default); tasks with other formats override this."""
        from mvit_tasks.engine.checkpointer import load_model_weights

        ema = self.cfg.get("TRAIN") and self.cfg.TRAIN.EMA.ENABLE and self.cfg.TRAIN.EMA.EVAL
        load_model_weights(model, path, self.cfg.MODEL.WEIGHTS_SOURCE,
                           self.cfg.MODEL.WEIGHTS_UNSAFE_PICKLE, use_ema=bool(ema))

    # ------------------------------------------------------------------------------- data
    def build_dataset(self, split: str) -> Dataset:
        """Dataset of ``split`` (``"train"``, ``"val"``, ``"test"``).

        Training datasets receive ``(index, sample_seed)`` tuples from the engine's sampler
        and must draw their augmentation randomness from ``sample_seed``.
        """
        raise NotImplementedError

    def collate_fn(self) -> Callable[[List[Any]], Dict[str, Any]]:
        """Samples -> batch dict (default: :func:`mvit_tasks.data.collate.collate_samples`)."""
        from mvit_tasks.data.collate import collate_samples

        return collate_samples

    def batch_transform(self, train: bool) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
        """A function applied to each batch on the device (e.g. mixup); None = none."""
        return None

    # ------------------------------------------------------------------------ evaluation
    def build_evaluator(self, split: str) -> DatasetEvaluator:
        raise NotImplementedError

    def build_hooks(self) -> List[HookBase]:
        """Extra hooks of this task; the engine runs them after its own epoch-end work
        (evaluation) and before the epoch's checkpoint (see :class:`HookBase`)."""
        return []
