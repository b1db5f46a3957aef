#!/usr/bin/env python
"""List, download and verify the official weights of the registered variants.

Examples::

    python tools/download_weights.py --list                  # every file: source, hash, cached?
    python tools/download_weights.py mvitv2_s_16x4           # the default weights
    python tools/download_weights.py mvitv2_s_16x4.ssv2 mvitv2_t.in1k
    python tools/download_weights.py --verify                # re-hash the cached files

Files go to the torch hub cache (``$TORCH_HOME/hub/checkpoints``); files found in a
``$MVIT_TASKS_WEIGHTS_MIRROR`` folder are used from there. Exit status: 0 done, 1 a download
or check failed, 2 an unknown name.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence, Tuple


from mvit_tasks.hub import download as dl
from mvit_tasks.hub.weights import PretrainedWeights
from mvit_tasks.hub.zoo import get_weights, split_name, weights_file
from mvit_tasks.modeling.backbone.pretrained import all_weights


def _hash(w: PretrainedWeights) -> str:
    if w.sha256:
        return "sha256"
    if w.hash_prefix:
        return f"prefix {w.hash_prefix}"
    return "none (unverified)"


def _local(w: PretrainedWeights) -> Optional[str]:
    return dl.find_local([w.file_name], dl.mirror_dirs() + [dl.cache_dir()])


def list_table() -> str:
    rows = ["| name | source | dataset | classes | size MB | published hash | local | address |",
            "|---|---|---|---|---|---|---|---|"]
    for variant, w in all_weights():
        size = f"{w.size_mb:g}" if w.size_mb else "-"
        local = _local(w)
        where = "-" if local is None else ("mirror" if not local.startswith(dl.cache_dir())
                                           else "cache")
        url = w.url if w.direct else f"{w.url} (a page: download by hand)"
        rows.append(f"| {variant}.{w.tag} | {w.source} | {w.dataset} | {w.num_classes} | {size} "
                    f"| {_hash(w)} | {where} | {url} |")
    return "\n".join(rows)


def verify() -> int:
    """Re-hash every local file against its published hash and its ``.sha256`` sidecar."""
    failed = 0
    for variant, w in all_weights():
        path = _local(w)
        if path is None:
            continue
        digest = dl.sha256_file(path)
        recorded = dl.read_sidecar(path)
        problems: List[str] = []
        try:
            dl.check_hash(digest, path, w.sha256, w.hash_prefix)
        except dl.HashMismatchError as e:
            problems.append(str(e))
        if recorded and recorded != digest:
            problems.append(f"sha256 {digest} differs from the recorded {recorded}")
        status = "FAILED: " + "; ".join(problems) if problems else (
            "ok (published hash)" if w.verified else "ok (matches the first download; "
            "no published hash)" if recorded else "unverified (no published hash, no record)")
        failed += bool(problems)
        print(f"{variant}.{w.tag}: {path}: {status}")
    return 1 if failed else 0


def resolve(names: Sequence[str]) -> List[Tuple[str, PretrainedWeights]]:
    out = []
    for name in names:
        variant, tag = split_name(name)
        out.append((variant, get_weights(variant, tag)))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="variant or variant.tag")
    p.add_argument("--list", action="store_true", help="print every official weights file")
    p.add_argument("--verify", action="store_true", help="re-hash the local files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.list:
        print(list_table())
    if args.verify:
        return verify()
    if not args.names:
        if not args.list:
            p.print_usage(sys.stderr)
            return 2
        return 0
    try:
        entries = resolve(args.names)
    except KeyError as e:
        print(f"download_weights: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    status = 0
    for variant, w in entries:
        try:
            path = weights_file(w, progress=not args.no_progress)
        except (dl.WeightsDownloadError, OSError) as e:
            print(f"{variant}.{w.tag}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{variant}.{w.tag}: {path}")
    return status


def cli() -> None:
    """Console script ``mvit-download-weights``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.download_weights
    cli()
