"""Per-minibatch cost of TRPL's learner: one `Learner.update` on a fixed batch.

    python benchmarks/learner_update.py [--projection kl] [--repeats 6]

Hopper-v5 module (64-64 networks), a synthetic 2048-row batch (fixed seed; the old
policy 0.05 away in mean, 2% in std), 10 epochs of 64-row minibatches with shuffling:
320 minibatches, each forward, projection, losses, backward, Adam and metrics. One
thread; the first update is a warm-up; prints the median of the rest. To compare two
commits, run it with each commit's package on the path (PYTHONPATH=<checkout>).

``--floor`` also times, interleaved with the updates, the part no TRPL code can remove:
the two networks' forward and backward and one fused Adam step per minibatch (on copies
of the networks, same minibatch sizes, shuffled with its own generator so that the
update's shuffles stay as without it, a loss with no TRPL term), and prints both medians
and their ratio.

Same math: ``--save-weights F`` stores the module's weights after the updates (seeded:
torch and NumPy at 0), and ``--compare-weights F`` prints the largest difference from
such a file, e.g. written by the previous commit with the same ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projection", default="kl")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--floor", action="store_true", help="also time the networks alone")
    parser.add_argument("--save-weights", help="write the weights after the updates here")
    parser.add_argument("--compare-weights", help="print the largest difference from these weights")
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)  # the minibatch shuffles
    import gymnasium as gym
    from ray.rllib.core.columns import Columns
    from ray.rllib.evaluation.postprocessing import Postprocessing
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from rllib_trl import TRPLConfig
    from rllib_trl.torch.distributions import make_distribution, pack

    np.ones(2_000_000)  # settle glibc's allocator thresholds, as benchmarks/projections.py
    torch.set_num_threads(1)
    config = (
        TRPLConfig()
        .environment("Hopper-v5")
        .training(
            projection=args.projection, train_batch_size_per_learner=2048, minibatch_size=64, num_epochs=10
        )
        .debugging(seed=0)
    )
    env = gym.make("Hopper-v5")
    learner = config.build_learner(env=env)
    env.close()
    module = learner.module["default_policy"].unwrapped()
    gen = torch.Generator().manual_seed(0)
    n = 2048
    obs = torch.randn(n, 11, generator=gen)

    def make_batch() -> MultiAgentBatch:
        with torch.no_grad():
            mean, scale = module.mean_and_scale(obs)
            old_mean = mean + 0.05 * torch.randn(mean.shape, generator=gen)
            old_scale = scale * 1.02
            dist = make_distribution(old_mean, old_scale, module.full)
            actions = dist.sample()
            logp = dist.logp(actions)
        rows = {
            Columns.OBS: obs,
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: logp,
            Columns.ACTION_DIST_INPUTS: pack(old_mean, old_scale, module.full),
            Postprocessing.ADVANTAGES: torch.randn(n, generator=gen),
            Postprocessing.VALUE_TARGETS: torch.randn(n, generator=gen) * 5,
            Columns.LOSS_MASK: torch.ones(n, dtype=torch.bool),
        }
        return MultiAgentBatch({"default_policy": SampleBatch(rows)}, env_steps=n)

    floor = networks_alone(module, obs, n) if args.floor else None
    times, floor_times = [], []
    for _ in range(args.repeats):
        if floor is not None:
            start = time.perf_counter()
            floor()
            floor_times.append(time.perf_counter() - start)
        batch = make_batch()
        start = time.perf_counter()
        learner.update(
            batch=batch,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: n},
            num_epochs=10,
            minibatch_size=64,
            shuffle_batch_per_epoch=True,
        )
        times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])
    print(f"{args.projection}: update {median:.3f} s, per minibatch {1000 * median / 320:.3f} ms (median)")
    if floor_times:
        floor_median = statistics.median(floor_times[1:])
        print(
            f"networks alone: per minibatch {1000 * floor_median / 320:.3f} ms (median), "
            f"{floor_median / median:.2f}x the update's"
        )
    weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if args.save_weights:
        torch.save(weights, args.save_weights)
    if args.compare_weights:
        other = torch.load(args.compare_weights)
        diff = max(float((weights[k] - other[k]).abs().max()) for k in weights)
        print(f"largest weight difference from {args.compare_weights}: {diff:.3g}")


def networks_alone(module, obs: torch.Tensor, n: int):
    """One update's worth (10 epochs x 32 minibatches of 64, shuffled) of what every
    minibatch needs whatever the loss: the policy and value nets' forward and backward
    and a fused Adam step, on copies of the networks, with a plain quadratic loss."""
    import copy

    try:
        from rllib_trl.torch.learner_fast_paths import adam_step
    except ImportError:  # a commit from before it, run with its package on the path

        def adam_step(optimizer) -> bool:
            return False

    parts = {"pi": module.pi_trunk, "head": module.mean_head, "vf": module.vf}
    nets = copy.deepcopy(torch.nn.ModuleDict(parts))
    act = module.pi_act
    params = list(nets.parameters())
    optimizer = torch.optim.Adam(params, fused=True)
    rng = np.random.default_rng(1)  # its own: the update's shuffles stay as without --floor

    def run() -> None:
        for _ in range(10):
            shuffled = obs[torch.from_numpy(rng.permutation(n))]
            for start in range(0, n, 64):
                o = shuffled[start : start + 64]
                loss = nets["head"](act(nets["pi"](o))).square().mean() + nets["vf"](o).square().mean()
                for p in params:
                    p.grad = None
                loss.backward()
                if not adam_step(optimizer):
                    optimizer.step()

    return run


if __name__ == "__main__":
    main()
