"""COCO box / mask AP with pycocotools' COCOeval (or faster-coco-eval, same numbers).

Metrics follow detectron2's ``COCOEvaluator``: AP, AP50, AP75, APs, APm, APl in percent (0-100)
and ``AP-<category name>`` (AP over IoU 0.50:0.95, all areas, 100 detections) per category;
metrics without ground truth (e.g. APs with no small object) are NaN. Mask AP uses mask areas
for the size ranges (box fields are removed from the results for ``segm``, as detectron2 does).
Unlike pycocotools (which raises on an empty results list), no detections give AP 0.

The evaluator does no logging; pycocotools' prints are captured. ``write_reports`` writes, as
detectron2's ``COCOEvaluator`` does, ``coco_instances_results.json`` (the standard COCO results
format) and the ids of the evaluated images (``coco_evaluated_image_ids.json``), so
``tools/eval_coco.py --groundtruth GT --detections coco_instances_results.json --image-ids
coco_evaluated_image_ids.json`` reproduces the numbers of the evaluation that wrote them.
"""
from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from mvit_tasks.evaluation.evaluator import DatasetEvaluator
from mvit_tasks.utils.comm import gather_list
from mvit_tasks.projects.coco_detection.converters.coco_json import CocoInstances, load_coco_json
from mvit_tasks.projects.coco_detection.converters.coco_results import (
    instances_to_coco_results,
    load_coco_results,
    validate_coco_results,
    write_coco_results,
)

RESULTS_FILE = "coco_instances_results.json"
IMAGE_IDS_FILE = "coco_evaluated_image_ids.json"

IOU_TYPES = ("bbox", "segm")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # = COCOeval.stats[0:6]
BACKENDS = ("pycocotools", "faster_coco_eval")

Results = Dict[str, Dict[str, float]]


def available_backends() -> List[str]:
    """Backends that import here (pycocotools always; faster-coco-eval when installed)."""
    out = ["pycocotools"]
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        pass
    else:
        out.append("faster_coco_eval")
    return out


def _backend(name: str) -> Tuple[Any, Any]:
    """(COCO class, COCOeval class) of backend ``name``."""
    if name == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if name == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise ImportError("backend 'faster_coco_eval' needs `pip install faster-coco-eval`")
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO eval backend {name!r}; choose from {BACKENDS}")


def _coco_from_dict(coco_cls: Any, data: Dict[str, Any]) -> Any:
    coco = coco_cls()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _results_for(results: Sequence[Dict[str, Any]], iou_type: str) -> List[Dict[str, Any]]:
    """Copies of ``results`` with only the fields ``iou_type`` reads (loadRes edits records)."""
    keep = ("image_id", "category_id", "score", "bbox" if iou_type == "bbox" else "segmentation")
    return [{k: r[k] for k in keep} for r in results]


def _to_percent(x: float) -> float:
    return float(x) * 100.0 if x >= 0 else float("nan")


def _run_cocoeval(coco_gt: Any, coco_cls: Any, eval_cls: Any, results: List[Dict[str, Any]],
                  iou_type: str, img_ids: Optional[Sequence[int]]) -> Dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # pycocotools' loadRes indexes results[0]: build an empty result set instead
            coco_dt = _coco_from_dict(coco_cls, {"images": coco_gt.dataset["images"],
                                                 "categories": coco_gt.dataset["categories"],
                                                 "annotations": []})
        ev = eval_cls(coco_gt, coco_dt, iou_type)
        if img_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = {name: _to_percent(ev.stats[i]) for i, name in enumerate(METRICS)}
    # precision: (iou thresholds, recall thresholds, categories, area ranges, max dets)
    precision = np.asarray(ev.eval["precision"])
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = coco_gt.cats[cat_id]["name"]
        metrics[f"AP-{name}"] = float(np.mean(p)) * 100.0 if p.size else float("nan")
    return metrics


def evaluate_coco(gt: CocoInstances, results: Sequence[Dict[str, Any]],
                  iou_types: Sequence[str] = IOU_TYPES, img_ids: Optional[Sequence[int]] = None,
                  backend: str = "pycocotools", source: str = "<results>") -> Results:
    """COCO AP of ``results`` (COCO results records) against ``gt``.

    Args:
        gt: the ground truth (load it with ``drop_invalid=False`` to keep every annotation).
        results: COCO result records (see ``converters.coco_results``); not modified.
        iou_types: any of ``"bbox"``, ``"segm"``.
        img_ids: evaluate on these images only (default: every ground-truth image).
        backend: ``"pycocotools"`` or ``"faster_coco_eval"``.
        source: names ``results`` in error messages.

    Returns:
        ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-<name>"...}}`` in percent.
    """
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad or not iou_types:
        raise ValueError(f"iou_types {list(iou_types)}: choose from {IOU_TYPES}")
    validate_coco_results(results, gt, iou_types, source)
    if "segm" in iou_types:
        no_mask = [a["id"] for anns in gt.annotations.values() for a in anns
                   if not a.get("segmentation")]
        if no_mask:
            raise ValueError(f"{gt.source}: segm evaluation needs a segmentation for every "
                             f"annotation; annotation ids without one: {no_mask[:20]}")
    coco_cls, eval_cls = _backend(backend)
    data = gt.to_coco_dict()  # COCOeval writes into the records: shallow copies of each
    data = {k: [dict(r) for r in v] for k, v in data.items()}
    coco_gt = _coco_from_dict(coco_cls, data)
    return {t: _run_cocoeval(coco_gt, coco_cls, eval_cls, _results_for(results, t), t, img_ids)
            for t in iou_types}


def evaluate_files(gt_json: str, dt_json: str, iou_types: Sequence[str] = IOU_TYPES,
                   backend: str = "pycocotools", image_ids_json: Optional[str] = None
                   ) -> Results:
    """:func:`evaluate_coco` of a COCO instances json and a COCO results json, on every
    ground-truth image or on the ids listed in ``image_ids_json`` (a json list, as
    :meth:`CocoEvaluator.write_reports` writes)."""
    gt = load_coco_json(gt_json, drop_invalid=False)
    results = load_coco_results(dt_json)
    img_ids = None
    if image_ids_json:
        img_ids = _load_image_ids(image_ids_json, gt)
    return evaluate_coco(gt, results, iou_types, img_ids=img_ids, backend=backend,
                         source=dt_json)


def _load_image_ids(path: str, gt: CocoInstances) -> List[int]:
    import json

    from mvit_tasks.projects.coco_detection.converters import CocoFormatError

    try:
        with open(path) as f:
            ids = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{path}: not valid JSON: line {e.lineno}: {e.msg}") from None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise CocoFormatError(f"{path}: expected a json list of image ids")
    unknown = [i for i in ids if i not in gt.images]
    if unknown:
        raise CocoFormatError(f"{path}: image ids not in {gt.source}: {unknown[:10]}")
    return ids


def _hw(x: Any) -> Tuple[int, int]:
    v = x.tolist() if isinstance(x, torch.Tensor) else list(x)
    return int(v[0]), int(v[1])


class CocoEvaluator(DatasetEvaluator):
    """COCO box / mask AP of a detector's per-image outputs.

    Args:
        gt: the ground-truth instances json (or a loaded :class:`CocoInstances`).
        iou_types: any of ``"bbox"``, ``"segm"`` (``segm`` needs ``"masks"`` in the outputs).
        backend: ``"pycocotools"`` or ``"faster_coco_eval"``.
        mask_threshold: mask probabilities above it are foreground.
    """

    def __init__(self, gt: Union[str, CocoInstances], iou_types: Sequence[str] = IOU_TYPES,
                 backend: str = "pycocotools", mask_threshold: float = 0.5) -> None:
        self.gt = gt if isinstance(gt, CocoInstances) else load_coco_json(gt, drop_invalid=False)
        self.iou_types = tuple(iou_types)
        bad = [t for t in self.iou_types if t not in IOU_TYPES]
        if bad or not self.iou_types:
            raise ValueError(f"iou_types {list(iou_types)}: choose from {IOU_TYPES}")
        _backend(backend)
        self.backend = backend
        self.mask_threshold = mask_threshold
        self._label_to_category = self.gt.mapping.label_to_id
        self.reset()

    def reset(self) -> None:
        self._results: List[Dict[str, Any]] = []
        self._image_ids: List[int] = []
        self._gathered: Optional[Tuple[List[Dict[str, Any]], List[int]]] = None

    def _rescale(self, image_id: int, inp: Mapping[str, Any],
                 out: Mapping[str, Any]) -> Dict[str, Any]:
        img = self.gt.images[image_id]
        h0, w0 = img["height"], img["width"]
        if inp.get("orig_size") is not None and _hw(inp["orig_size"]) != (h0, w0):
            raise ValueError(f"image {image_id}: orig_size {_hw(inp['orig_size'])} differs from "
                             f"the ground truth's {(h0, w0)}")
        h, w = _hw(inp["size"]) if inp.get("size") is not None else (h0, w0)
        boxes = torch.as_tensor(out["boxes"]).detach().cpu().double().reshape(-1, 4)
        scale = torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h], dtype=torch.float64)
        res = {"boxes": boxes * scale, "labels": out["labels"], "scores": out["scores"]}
        if "segm" in self.iou_types:
            if out.get("masks") is None:
                raise ValueError(f"image {image_id}: segm evaluation needs 'masks' in the output")
            masks = torch.as_tensor(out["masks"]).float()
            masks = masks.unsqueeze(1) if masks.dim() == 3 else masks
            if tuple(masks.shape[-2:]) != (h, w):
                raise ValueError(f"image {image_id}: masks are {tuple(masks.shape[-2:])}, the "
                                 f"image the model saw is {(h, w)}")
            if (h, w) != (h0, w0) and masks.shape[0] > 0:
                masks = F.interpolate(masks, size=(h0, w0), mode="bilinear", align_corners=False)
            res["masks"] = masks
        return res

    def process(self, inputs: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
                outputs: Sequence[Mapping[str, Any]]) -> None:
        """Convert one batch of detections to COCO result records.

        Args:
            inputs: a batch of :func:`~mvit_tasks.projects.coco_detection.dataset.collate_detection`
                (its ``"targets"`` are used) or a list of per-image dicts (e.g. the dataset's
                targets), each with ``"image_id"`` and, optionally, ``"size"`` (H, W) of the
                image given to the model, i.e. the frame of the outputs (default: the
                original image); outputs in another frame are rescaled to the ground truth's
                (height, width). ``"orig_size"``, if present, must equal the ground truth's
                (height, width).
            outputs: per-image dicts: ``"boxes"`` (N, 4) xyxy absolute pixels in the frame
                above, ``"labels"`` (N,) contiguous 1..K, ``"scores"`` (N,), ``"masks"``
                (N, 1, H, W) probabilities (needed for ``segm``).
        """
        if isinstance(inputs, Mapping):
            inputs = inputs["targets"]
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
        for inp, out in zip(inputs, outputs):
            image_id = int(inp["image_id"])
            if image_id not in self.gt.images:
                raise ValueError(f"image id {image_id} is not in {self.gt.source}")
            res = self._rescale(image_id, inp, out)
            self._results.extend(instances_to_coco_results(
                image_id, res, self._label_to_category, self.mask_threshold))
            self._image_ids.append(image_id)

    def evaluate(self) -> Results:
        """AP on the images processed on all ranks (NaN everywhere if none were)."""
        image_ids = gather_list(self._image_ids)
        results = gather_list(self._results)
        self._gathered = (results, sorted(set(image_ids)))
        if not image_ids:
            self._metrics = {t: {m: float("nan") for m in METRICS} for t in self.iou_types}
        else:
            self._metrics = evaluate_coco(self.gt, results, self.iou_types,
                                          img_ids=sorted(set(image_ids)), backend=self.backend)
        return self._metrics


    def write_reports(self, output_dir: str) -> List[str]:
        """``coco_instances_results.json`` (every rank's detections, COCO results format) and
        ``coco_evaluated_image_ids.json`` of the last :meth:`evaluate`; returns the paths."""
        import json
        import os

        from mvit_tasks.utils.fileio import atomic_write_text

        if self._gathered is None:
            raise RuntimeError("call evaluate() before write_reports()")
        results, image_ids = self._gathered
        paths = [os.path.join(output_dir, RESULTS_FILE), os.path.join(output_dir, IMAGE_IDS_FILE)]
        write_coco_results(paths[0], results)
        atomic_write_text(paths[1], json.dumps(image_ids))
        self._write_per_category_charts(output_dir)
        return paths

    def _write_per_category_charts(self, output_dir: str) -> List[str]:
        """``coco_per_category_ap_<iou type>.png``: the ``AP-<category>`` of the last
        :meth:`evaluate`, sorted; their paths (not in ``write_reports``' list, which names
        the files ``tools/eval_coco.py`` reads)."""
        import os

        from mvit_tasks.engine.events import per_class_figure, save_figure

        paths = []
        for iou_type, metrics in getattr(self, "_metrics", {}).items():
            ap = {k[3:]: v for k, v in metrics.items() if k.startswith("AP-")}
            if not ap:
                continue
            mean = metrics.get("AP", float("nan"))
            shown = "n/a" if math.isnan(mean) else f"{mean:.2f}"
            title = f"COCO {iou_type} AP per category (AP {shown}, IoU 0.50:0.95)"
            paths.append(save_figure(per_class_figure(ap, title), os.path.join(
                output_dir, f"coco_per_category_ap_{iou_type}.png")))
        return paths


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.3f}"


def format_results_table(results: Results, per_category_columns: int = 3) -> str:
    """Markdown tables of :func:`evaluate_coco` results (summary, then per-category AP)."""
    lines: List[str] = []
    for iou_type, m in results.items():
        lines.append(f"Evaluation results for {iou_type}:")
        lines.append("| " + " | ".join(f"{k:>7}" for k in METRICS) + " |")
        lines.append("|" + "|".join(":" + "-" * 7 + ":" for _ in METRICS) + "|")
        lines.append("| " + " | ".join(f"{_fmt(m[k]):>7}" for k in METRICS) + " |")
        cats = [(k[3:], v) for k, v in m.items() if k.startswith("AP-")]
        if cats:
            n = per_category_columns
            lines.append(f"Per-category {iou_type} AP:")
            lines.append("| " + " | ".join(["category", "AP"] * n) + " |")
            lines.append("|" + "|".join([":---", "---:"] * n) + "|")
            for i in range(0, len(cats), n):
                row = [x for name, v in cats[i:i + n] for x in (name, _fmt(v))]
                row += [""] * (2 * n - len(row))
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)
