"""Projection speed: median microseconds for forward + backward, one thread, float64.

    python benchmarks/projections.py [--out benchmarks/results/projections.json] [--quick]
    python benchmarks/projections.py --ratios   # KL / bare Frobenius at k=6 (issue 14)
    python benchmarks/projections.py --quick --device cuda --out F.json   # on a GPU

For each projection, diagonal and full, B in {1, 64, 2048, 8192}, k in {3, 6, 17}, with
(nearly) every state outside the trust region (bounds 0.01, as in the C++ anchor of
DESIGN.md §3). Frobenius and W2 are also timed as bare closed forms (no input checks,
no masks) to show the cost of the library's safety.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rllib_trl.projections import get_trust_region
from rllib_trl.projections.divergences import (
    frobenius_cov_part,
    mean_distance,
    sqrt_cov,
    w2_cov_part_from_roots,
)
from rllib_trl.projections.gaussian import cholesky_of, covariance

BATCHES = (1, 64, 2048, 8192)
DIMS = (3, 6, 17)
BOUND = 0.01


def make_inputs(batch: int, k: int, full: bool, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """A new/old pair far enough apart that every state is projected, on ``device``."""
    gen = torch.Generator().manual_seed(0)
    old_mean = torch.randn(batch, k, generator=gen, dtype=torch.float64)
    mean = old_mean + 0.5 * torch.randn(batch, k, generator=gen, dtype=torch.float64)
    if full:
        a = torch.randn(batch, k, k, generator=gen, dtype=torch.float64) / k**0.5
        eye = torch.eye(k, dtype=torch.float64)
        old_scale = torch.linalg.cholesky(eye + 0.3 * a @ a.mT)
        b = torch.randn(batch, k, k, generator=gen, dtype=torch.float64) / k**0.5
        scale = torch.linalg.cholesky(old_scale @ (eye + 0.5 * b @ b.mT) @ old_scale.mT)
    else:
        old_scale = torch.exp(0.3 * torch.randn(batch, k, generator=gen, dtype=torch.float64))
        scale = old_scale * torch.exp(0.3 * torch.randn(batch, k, generator=gen, dtype=torch.float64))
    return tuple(t.to(device) for t in (mean, scale, old_mean, old_scale))


def bare_closed_form(name: str):
    """The textbook closed form with no checks and no inside/outside masking."""

    def project(mean, scale, old_mean, old_scale, *, mean_bound, cov_bound):
        full = scale.dim() == mean.dim() + 1
        d_mean = mean_distance(mean, old_mean, old_scale, full, True)
        p_mean = old_mean + (mean - old_mean) * (mean_bound / d_mean).sqrt().unsqueeze(-1)
        if name == "frobenius":
            d_cov = frobenius_cov_part(scale, old_scale, full)
            rep, old_rep = covariance(scale, full), covariance(old_scale, full)
        else:
            rep, old_rep = sqrt_cov(scale, full), sqrt_cov(old_scale, full)
            d_cov = w2_cov_part_from_roots(rep, old_rep, full, True)
        w = (cov_bound / d_cov).sqrt()
        w = w[..., None, None] if full else w[..., None]
        p_rep = old_rep + (rep - old_rep) * w
        if name == "frobenius":
            return p_mean, cholesky_of(p_rep) if full else p_rep.sqrt()
        return p_mean, cholesky_of(p_rep @ p_rep) if full else p_rep

    return project


def time_once(fn, inputs) -> float:
    """Seconds for one forward + backward (on a GPU, until its kernels have finished)."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    cuda = leaves[0].is_cuda
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    p_mean, p_scale = fn(*leaves, mean_bound=BOUND, cov_bound=BOUND)
    (p_mean.sum() + p_scale.sum()).backward()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_us(fn, inputs, budget_s: float) -> float:
    return paired_median_us([fn], inputs, budget_s)[0]


def settle_allocator() -> None:
    """Allocate and free one 16 MB block first. glibc raises its mmap and trim thresholds
    when such a block is freed, as it is many times in any training process; a fresh
    process instead returns freed heap to the OS and faults it back in on the next call.
    Measured here without this: the KL projection at B=2048 took 1050 or 1900 µs
    depending on what the process had allocated before."""
    block = np.ones(2_000_000)
    del block


def paired_median_us(fns, inputs, budget_s: float) -> list[float]:
    """Median µs of each function, timed call by call in turn (so a change in the
    machine's load hits all of them alike)."""
    for fn in fns:
        for _ in range(3):
            time_once(fn, inputs)  # warm-up
    samples: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(samples[0]) < 7 or (time.perf_counter() - start < budget_s and len(samples[0]) < 2000):
        for fn, own in zip(fns, samples, strict=True):
            own.append(time_once(fn, inputs))
    return [1e6 * statistics.median(own) for own in samples]


def print_ratios() -> None:
    """The KL projection's cost relative to the bare Frobenius closed form (issue 14),
    the two timed call by call in turn."""
    kl, bare = get_trust_region("kl").project, bare_closed_form("frobenius")
    for full in (False, True):
        for batch in (64, 2048):
            inputs = make_inputs(batch, 6, full)
            a, b = paired_median_us([kl, bare], inputs, 2.0)
            cov = "full" if full else "diag"
            line = f"{cov} B={batch} k=6: kl {a:.0f} µs, frobenius-bare {b:.0f} µs, ratio {a / b:.2f}"
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/projections.json")
    parser.add_argument("--quick", action="store_true", help="B in {1, 2048}, k=6 only")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timing per cell")
    parser.add_argument(
        "--ratios",
        action="store_true",
        help="only KL over the bare Frobenius form, k=6, B in {64, 2048}, diag and full (2 s per cell)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (timed to kernel completion)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settle_allocator()
    if args.ratios:
        print_ratios()
        return
    batches, dims = ((1, 2048), (6,)) if args.quick else (BATCHES, DIMS)
    rows = []
    impls = [(n, get_trust_region(n).project) for n in ("kl", "frobenius", "wasserstein")]
    impls += [(f"{n}-bare", bare_closed_form(n)) for n in ("frobenius", "wasserstein")]
    print(f"{'projection':<18}{'cov':<6}{'B':>6}{'k':>4}{'median µs':>12}")
    for name, fn in impls:
        for full in (False, True):
            for k in dims:
                for batch in batches:
                    us = median_us(fn, make_inputs(batch, k, full, args.device), args.budget)
                    rows.append(
                        {"projection": name, "cov": "full" if full else "diag", "B": batch, "k": k, "us": us}
                    )
                    print(f"{name:<18}{rows[-1]['cov']:<6}{batch:>6}{k:>4}{us:>12.1f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": 1,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
