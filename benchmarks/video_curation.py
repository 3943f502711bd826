"""Video data curation (generative.curation) against the clip generator's truth. Prints JSON.

For each seed, ``--clips`` clips of ``--frames`` frames (``--size`` px) from
:func:`generative.data.clips.sample_clips` with ``--cut-fraction`` hard cuts, ``--static-fraction``
static clips and Gaussian frame noise ``--noise``; reported: precision and recall of the cut and
static filters, the speed error of the phase-correlation tracker on clean (uncut, moving) clips
in pixels per frame, and clips per second of the filters (one thread).

    python benchmarks/video_curation.py --seeds 0 1 --noise 0.1
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from generative.curation import curate, precision_recall
from generative.data.clips import sample_clips


def run(seed: int, args) -> dict:
    clips = sample_clips(args.clips, args.frames, args.size, args.size, cut_fraction=args.cut_fraction,
                         static_fraction=args.static_fraction, noise=args.noise, generator=seed)
    start = time.perf_counter()
    found = curate(clips["clip"])
    seconds = time.perf_counter() - start
    has_cut = clips["cut_frame"] > 0
    clean = ~has_cut & ~clips["static"]
    error = (found["motion"] - clips["speed"])[clean].abs()
    cut_p, cut_r = precision_recall(found["has_cut"], has_cut)
    static_p, static_r = precision_recall(found["static"], clips["static"])
    return {"seed": seed, "cut_precision": cut_p, "cut_recall": cut_r, "static_precision": static_p,
            "static_recall": static_r, "speed_error_mean": error.mean().item(),
            "speed_error_p95": error.quantile(0.95).item(), "speed_error_max": error.max().item(),
            "within_half_pixel": (error < 0.5).float().mean().item(), "clips_per_second": args.clips / seconds,
            "true_cuts": int(has_cut.sum()), "true_static": int(clips["static"].sum())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--cut-fraction", type=float, default=0.2)
    parser.add_argument("--static-fraction", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        runs = [run(seed, args) for seed in args.seeds]
    except ValueError as err:  # an impossible setting, e.g. --noise -1: say so without a traceback
        parser.error(str(err))
    summary = {key: [min(r[key] for r in runs), max(r[key] for r in runs)]
               for key in runs[0] if key not in ("seed", "true_cuts", "true_static")}
    print(json.dumps({"benchmark": "video_curation", "settings": vars(args), "runs": runs, "min_max": summary,
                      "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1,
                                  "torch": torch.__version__}}, indent=1))


if __name__ == "__main__":
    main()
