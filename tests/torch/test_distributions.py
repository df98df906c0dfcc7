"""The full-covariance distribution and the action_dist_inputs layout."""

from __future__ import annotations

import torch

from rllib_trl.torch.distributions import TorchFullGaussian, pack, unpack


def _random_tril(k: int, n: int, gen) -> torch.Tensor:
    a = torch.randn(n, k, k, generator=gen, dtype=torch.float64)
    return torch.linalg.cholesky(a @ a.mT + 0.5 * torch.eye(k, dtype=torch.float64))


def test_pack_unpack_round_trip():
    gen = torch.Generator().manual_seed(0)
    mean, tril = torch.randn(5, 3, generator=gen, dtype=torch.float64), _random_tril(3, 5, gen)
    m, t = unpack(pack(mean, tril, True), True)
    torch.testing.assert_close(m, mean)
    torch.testing.assert_close(t, tril)
    std = torch.rand(5, 3, generator=gen, dtype=torch.float64) + 0.1
    m, s = unpack(pack(mean, std, False), False)
    torch.testing.assert_close(s, std)


def test_large_off_diagonal_has_finite_gradient():
    inputs = torch.tensor([[0.0, 0.0, 0.1, 100.0, 0.2]], requires_grad=True)  # k=2, L[1,0]=100
    _, tril = unpack(inputs, True)
    tril.sum().backward()
    assert torch.isfinite(inputs.grad).all()


def test_logp_entropy_match_torch_and_samples():
    gen = torch.Generator().manual_seed(1)
    mean, tril = torch.randn(4, 3, generator=gen, dtype=torch.float64), _random_tril(3, 4, gen)
    dist = TorchFullGaussian.from_logits(pack(mean, tril, True))
    reference = torch.distributions.MultivariateNormal(mean, scale_tril=tril)
    x = reference.sample((7,))
    torch.testing.assert_close(dist.logp(x), reference.log_prob(x))
    torch.manual_seed(0)
    samples = dist.sample(sample_shape=(20000,))  # (20000, 4, 3)
    # statistical checks: sample mean and covariance, entropy = −E[log p]
    torch.testing.assert_close(samples.mean(0), mean, atol=0.06, rtol=0)
    centred = samples - mean
    cov = torch.einsum("nbi,nbj->bij", centred, centred) / samples.shape[0]
    torch.testing.assert_close(cov, tril @ tril.mT, atol=0.15, rtol=0.05)
    torch.testing.assert_close(-dist.logp(samples).mean(0), dist.entropy(), atol=0.05, rtol=0)
    assert torch.equal(dist.to_deterministic().sample(), mean)


def test_module_samples_what_get_actions_samples():
    """A diagonal module's exploration forward gives RLlib's GetActions draws and
    log-probs (same seed, bit for bit); a full covariance leaves them to GetActions."""
    import gymnasium as gym
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian

    from tests.algorithm.helpers import small_config

    for cov_type in ("diag", "full"):
        module = small_config(cov_type=cov_type).get_rl_module_spec(env=gym.make("Hopper-v5")).build()
        batch = {Columns.OBS: torch.randn(5, 11, generator=torch.Generator().manual_seed(2))}
        torch.manual_seed(3)
        out = module.forward_exploration(batch)
        if cov_type == "full":
            assert Columns.ACTIONS not in out
            continue
        torch.manual_seed(3)
        dist = TorchDiagGaussian.from_logits(module._forward(batch)[Columns.ACTION_DIST_INPUTS])
        actions = dist.sample()
        assert torch.equal(out[Columns.ACTIONS], actions)
        assert torch.equal(out[Columns.ACTION_LOGP], dist.logp(actions))
        assert not torch.equal(actions, dist.loc)  # it explores
        with torch.no_grad():
            module.mean_head[-1].bias.fill_(float("nan"))
        # not finite: left to GetActions, whose checked distribution raises, as before
        assert Columns.ACTIONS not in module.forward_exploration(batch)
