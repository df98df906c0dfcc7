"""The projections solve their optimisation problems: an independent root finder for
the KL multiplier, full == diagonal on diagonal inputs, brute-force minimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize

from rllib_trl.projections import get_trust_region, kl_parts, kl_projection
from tests.projections.helpers import MEASURES, random_pair, to_full


def kl_cov(cov_new: np.ndarray, cov_old: np.ndarray) -> float:
    """½ [tr(Σ_o⁻¹ Σ) − k + log det Σ_o − log det Σ]."""
    k = cov_new.shape[0]
    return 0.5 * (
        np.trace(np.linalg.solve(cov_old, cov_new))
        - k
        + np.linalg.slogdet(cov_old)[1]
        - np.linalg.slogdet(cov_new)[1]
    )


def interpolated(cov: np.ndarray, cov_old: np.ndarray, eta: float) -> np.ndarray:
    """Σ̃ = (1 + η) (Σ⁻¹ + η Σ_o⁻¹)⁻¹."""
    return (1 + eta) * np.linalg.inv(np.linalg.inv(cov) + eta * np.linalg.inv(cov_old))


@pytest.mark.parametrize("full", [False, True])
def test_kl_matches_scipy_root(full):
    mean, scale, old_mean, old_scale = random_pair(11, 32, 4, full, spread=2.0)
    cov_bound = 0.005
    _, p_scale = kl_projection(mean, scale, old_mean, old_scale, mean_bound=1.0, cov_bound=cov_bound)
    _, d_cov = kl_parts(mean, scale, old_mean, old_scale)
    sf = scale if full else to_full(scale)
    osf = old_scale if full else to_full(old_scale)
    psf = p_scale if full else to_full(p_scale)
    checked = 0
    for i in range(mean.shape[0]):
        cov, cov_old = (sf[i] @ sf[i].T).numpy(), (osf[i] @ osf[i].T).numpy()
        if d_cov[i] <= cov_bound:
            expected = cov
        else:
            eta = brentq(
                lambda e: kl_cov(interpolated(cov, cov_old, e), cov_old) - cov_bound, 0.0, 1e8, xtol=1e-14
            )
            expected = interpolated(cov, cov_old, eta)
            checked += 1
        np.testing.assert_allclose((psf[i] @ psf[i].T).numpy(), expected, rtol=1e-7, atol=1e-10)
    assert checked > 5


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("scale_prec", [True, False])
def test_full_equals_diagonal_on_diagonal_inputs(measure, scale_prec):
    mean, std, old_mean, old_std = random_pair(4, 32, 5, False, shift=2.0, spread=2.0)
    tr = get_trust_region(measure, scale_prec=scale_prec)
    d_mean, d_std = tr.project(mean, std, old_mean, old_std, mean_bound=0.02, cov_bound=0.02)
    f_mean, f_scale = tr.project(
        mean, to_full(std), old_mean, to_full(old_std), mean_bound=0.02, cov_bound=0.02
    )
    torch.testing.assert_close(f_mean, d_mean, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(f_scale, to_full(d_std), rtol=1e-7, atol=1e-10)


# Brute force: minimise the projection objective d(π̃, π) under d(π̃, π_old) <= ε with SLSQP,
# over a 2-d full covariance (parametrised by its Cholesky factor) and the mean.
def _chol(theta: np.ndarray) -> np.ndarray:
    return np.array([[np.exp(theta[0]), 0.0], [theta[1], np.exp(theta[2])]])


def _objective(measure: str, scale_prec: bool):
    """d_cov(Σ̃, Σ) measured as the projection measures it (the old covariance sets the metric)."""

    def sqrtm(c):
        w, v = np.linalg.eigh(c)
        return (v * np.sqrt(w)) @ v.T

    def cov_dist(c_new, c_ref, c_old):
        if measure == "kl":
            return kl_cov(c_new, c_ref)
        if measure == "frobenius":
            return float(np.sum((c_new - c_ref) ** 2))
        diff = sqrtm(c_new) - sqrtm(c_ref)
        if scale_prec:
            diff = np.linalg.solve(sqrtm(c_old), diff)
        return float(np.sum(diff**2))

    return cov_dist


@pytest.mark.parametrize(
    "measure, scale_prec",
    [("kl", True)] + [(m, p) for m in ("frobenius", "wasserstein") for p in (True, False)],
)
def test_cov_matches_brute_force(measure, scale_prec):
    cov_dist = _objective(measure, scale_prec)
    tr = get_trust_region(measure, scale_prec=scale_prec)
    bound = 0.05
    checked = 0
    for seed in range(3):
        mean, scale, old_mean, old_scale = random_pair(100 + seed, 1, 2, True, spread=2.0)
        cov, cov_old = (scale[0] @ scale[0].T).numpy(), (old_scale[0] @ old_scale[0].T).numpy()
        if cov_dist(cov, cov_old, cov_old) <= bound:
            continue  # inside the region: nothing to compare
        checked += 1
        _, p_scale = tr.project(mean, scale, old_mean, old_scale, mean_bound=1.0, cov_bound=bound)
        projected = (p_scale[0] @ p_scale[0].T).numpy()
        res = minimize(
            lambda t: cov_dist(_chol(t) @ _chol(t).T, cov, cov_old),
            x0=np.array(
                [
                    np.log(old_scale[0, 0, 0].item()),
                    old_scale[0, 1, 0].item(),
                    np.log(old_scale[0, 1, 1].item()),
                ]
            ),
            constraints=[
                {"type": "ineq", "fun": lambda t: bound - cov_dist(_chol(t) @ _chol(t).T, cov_old, cov_old)}
            ],
            method="SLSQP",
            options={"ftol": 1e-12, "maxiter": 500},
        )
        assert res.success
        brute = _chol(res.x) @ _chol(res.x).T
        assert cov_dist(projected, cov, cov_old) <= res.fun + 1e-6
        np.testing.assert_allclose(projected, brute, rtol=2e-3, atol=2e-4)
    assert checked >= 2, f"only {checked} of 3 seeds needed a projection"


@pytest.mark.parametrize("measure", MEASURES)
def test_mean_matches_brute_force(measure):
    mean, scale, old_mean, old_scale = random_pair(7, 1, 3, True, shift=5.0)
    tr = get_trust_region(measure)
    bound = 0.01
    p_mean, _ = tr.project(mean, scale, old_mean, old_scale, mean_bound=bound, cov_bound=10.0)
    prec = torch.cholesky_inverse(old_scale[0]).numpy()
    half = 0.5 if measure == "kl" else 1.0
    mu, mu_o = mean[0].numpy(), old_mean[0].numpy()
    res = minimize(
        lambda m: (m - mu) @ prec @ (m - mu),
        x0=mu_o,
        constraints=[{"type": "ineq", "fun": lambda m: bound - half * (m - mu_o) @ prec @ (m - mu_o)}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    np.testing.assert_allclose(p_mean[0].numpy(), res.x, rtol=1e-4, atol=1e-6)
