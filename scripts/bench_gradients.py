"""Time the gradient explanations against SHAP on demo checkpoints.

    python scripts/bench_gradients.py --data demo_data --checkpoints checkpoints gated early

For each checkpoint: Integrated Gradients over all modalities at several step counts
(median / min seconds per sample, median |convergence delta| relative to
|f(x) - f(baseline)|), GradientSHAP, Grad-CAM and SHAP (``core.explain.explain``,
default parameters), each on the same samples after one warm-up call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from core.checkpoints import load_checkpoint
from core.data import load_dataset, load_sample
from core.explain import explain
from core.explain.gradients import GradientParams, grad_cam, gradient_shap, integrated_gradients


def timed(function, samples):
    """Wall seconds per sample (after one warm-up call: kernel selection, imports, caches)
    and the process CPU seconds per sample (less sensitive to other work on the machine)."""
    function(samples[0])
    times, results = [], []
    cpu_started = time.process_time()
    for sample in samples:
        started = time.perf_counter()
        results.append(function(sample))
        times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / len(samples)
    return np.asarray(times), results, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="checkpoint names, e.g. gated early")
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", default="16,32,64,128")
    parser.add_argument("--shap-samples", type=int, default=5, help="SHAP is slower: fewer samples")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data)
    records = [r for r in dataset.split("test") if len(r.present()) == len(dataset.modalities())]
    samples = [load_sample(r) for r in records[: args.samples]]
    print(f"{len(samples)} test samples with every modality; torch threads: {torch.get_num_threads()}")
    for name in args.names:
        loaded = load_checkpoint(f"{args.checkpoints}/{name}")
        for steps in (int(s) for s in args.steps.split(",")):
            params = GradientParams(n_steps=steps)
            times, results, cpu = timed(
                lambda s, p=params, m=loaded: integrated_gradients(m, s, gradient_params=p), samples
            )
            relative = [
                abs(r.metadata["convergence_delta"]) / max(abs(r.metadata["difference"]), 1e-3) for r in results
            ]
            print(
                f"{name:10s} integrated_gradients n_steps={steps:<4d} median {np.median(times):.3f} s"
                f"  min {times.min():.3f} s  cpu {cpu:.3f} s  median |delta|/|f(x)-f(b)| {np.median(relative):.3f}"
                f"  batch {results[-1].metadata['internal_batch_size']}"
            )
        for label, function, chosen in (
            ("gradient_shap n_samples=16  ", lambda s, m=loaded: gradient_shap(m, s), samples),
            ("grad_cam                    ", lambda s, m=loaded: grad_cam(m, s), samples),
            ("shap (explain, defaults)    ", lambda s, m=loaded: explain(m, s, "shap"), samples[: args.shap_samples]),
        ):
            times, _, cpu = timed(function, chosen)
            print(f"{name:10s} {label} median {np.median(times):.3f} s  min {times.min():.3f} s  cpu {cpu:.3f} s")


if __name__ == "__main__":
    main()
