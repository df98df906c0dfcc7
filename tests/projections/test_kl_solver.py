"""The KL multiplier solver: its slope, its active set, and its root, on CPU (NumPy) and
in torch (the path other devices take)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rllib_trl.projections.divergences import kl_cov_part
from rllib_trl.projections.kl_solver import f_and_slope, log_det_of, solve_entries_first, solve_multiplier


def _lambdas(spread: float, shape=(64, 3), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.exp(spread * torch.randn(*shape, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("spread", [0.05, 1.0, 6.0])
def test_slope_is_the_derivative_of_f(spread):
    """f'(η) = −½ Σ x_i² / (1 + η) agrees with autograd through f (float64), and with a
    central finite difference where f is smooth enough for one."""
    lam = _lambdas(spread)
    for eta0 in (0.0, 0.3, 5.0, 200.0):
        eta = torch.full(lam.shape[:-1], eta0, dtype=torch.float64, requires_grad=True)
        f, slope = f_and_slope(eta, lam.T, log_det_of(lam.T))
        (grad,) = torch.autograd.grad(f.sum(), eta)
        torch.testing.assert_close(slope.detach(), grad, rtol=1e-9, atol=1e-12)
        if spread < 1.0 and eta0 > 0:
            h = 1e-5 * eta0
            with torch.no_grad():
                f_plus, _ = f_and_slope(eta + h, lam.T, log_det_of(lam.T))
                f_minus, _ = f_and_slope(eta - h, lam.T, log_det_of(lam.T))
            fd = (f_plus - f_minus) / (2 * h)
            torch.testing.assert_close(slope.detach(), fd, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("spread", [0.01, 0.05, 0.3, 3.0])
def test_active_set_is_kl_cov_part_above_bound(spread):
    """Without a given mask the solver marks exactly the states whose KL covariance part
    exceeds the bound, and lands those on it."""
    bound = 1e-3
    lam = _lambdas(spread, seed=1)
    eta, active = solve_multiplier(lam, bound)
    expected = kl_cov_part(lam.sqrt(), torch.ones_like(lam), False) > bound
    assert torch.equal(active, expected)
    assert torch.all(eta[~active] == 0)
    f, _ = f_and_slope(eta, lam.T, log_det_of(lam.T))
    torch.testing.assert_close(f[active], torch.full_like(f[active], bound), rtol=1e-8, atol=0)


def test_none_active_returns_zero_multipliers():
    lam = _lambdas(1e-3)
    eta, active = solve_multiplier(lam, 0.1)
    assert not active.any()
    assert eta.shape == lam.shape[:-1] and torch.all(eta == 0)


def test_numpy_and_torch_paths_agree():
    """CPU tensors go through NumPy; the torch path (used on GPUs) gives the same root."""
    lam = _lambdas(0.7, seed=2)
    eta_np, active_np = solve_multiplier(lam, 1e-3)
    with np.errstate(all="ignore"):
        eta_t, active_t = solve_entries_first(lam.T.contiguous(), 1e-3, None, torch)
    assert torch.equal(active_np, active_t)
    torch.testing.assert_close(eta_np, eta_t, rtol=1e-10, atol=1e-12)


def test_extreme_ratios_land_on_the_bound():
    """std ratios of 1e∓15: the first Newton iterates overflow 1 + ηλ (f = inf there);
    the bracket treats that as past the root and still lands on ε_Σ."""
    lam = torch.tensor([[1.67e-29, 4.3e17], [1e-20, 1e20]], dtype=torch.float64)
    eta, active = solve_multiplier(lam, 1e-6)
    assert active.all() and torch.isfinite(eta).all()
    f, _ = f_and_slope(eta, lam.T, log_det_of(lam.T))
    torch.testing.assert_close(f, torch.full_like(f, 1e-6), rtol=1e-6, atol=0)


def test_unbatched_input_keeps_its_shape():
    eta, active = solve_multiplier(torch.tensor([4.0, 0.25], dtype=torch.float64), 1e-3)
    assert eta.shape == () and active.shape == ()


def _count_evaluations(monkeypatch) -> list:
    import rllib_trl.projections.kl_solver as solver

    calls: list = []
    real = solver.f_and_slope
    monkeypatch.setattr(solver, "f_and_slope", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize(("spread", "bound"), [(0.2, 1e-2), (0.6, 1e-3), (3.0, 1e-3), (6.0, 5e-5)])
def test_start_needs_one_halley_step(spread, bound, monkeypatch):
    """From the start (C_∞, then one step of the quadratic model) one Halley step lands
    every state within the tolerance: two evaluations of f (the start, the check), where
    the start from f(0)/(1 + η)² needed 3, 3, 11 and 13 on these batches."""
    calls = _count_evaluations(monkeypatch)
    lam = _lambdas(spread, shape=(2048, 6), seed=3)
    eta, active = solve_multiplier(lam, bound)
    assert active.any() and len(calls) == 2
    f, _ = f_and_slope(eta, lam.T, log_det_of(lam.T))
    torch.testing.assert_close(f[active], torch.full_like(f[active], bound), rtol=1e-8, atol=0)


def test_large_bound_and_one_large_ratio(monkeypatch):
    """ε_Σ = 0.3 and one λ of 15.7: C_∞ (0.306) is just above ε_Σ while f(0) is 6.1, so
    the root is not large against 1/λ_i; the model step keeps the solve at four
    evaluations (C_∞ alone started so far off that it took the fallback, ten)."""
    calls = _count_evaluations(monkeypatch)
    lam = torch.tensor([[0.8770024413667303, 1.4850527712683226, 15.737824090582718, 1.4418931903629326,
                         0.8387084998441026, 1.423841472754617]], dtype=torch.float64)  # fmt: skip
    eta, active = solve_multiplier(lam, 0.3)
    assert active.all() and len(calls) <= 4
    f, _ = f_and_slope(eta, lam.T, log_det_of(lam.T))
    torch.testing.assert_close(f, torch.full_like(f, 0.3), rtol=1e-8, atol=0)


def test_tiny_ratio_gives_a_finite_multiplier():
    """σ/σ_o ~ 1e-77: 2 f'² underflows in the final Halley step, which must not turn η
    into inf."""
    for lam in ([1e-154], [1e-154, 1.0]):
        eta, active = solve_multiplier(torch.tensor(lam, dtype=torch.float64), 1e-10)
        assert active and torch.isfinite(eta) and eta > 0
