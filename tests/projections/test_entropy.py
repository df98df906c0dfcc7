"""Entropy control and its schedules; the entropy formula against torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from rllib_trl.projections import entropy, entropy_bound, entropy_projection
from tests.projections.helpers import random_pair


@pytest.mark.parametrize("full", [False, True])
def test_entropy_matches_torch(full):
    mean, scale, _, _ = random_pair(0, 6, 4, full)
    tril = scale if full else torch.diag_embed(scale)
    expected = MultivariateNormal(mean, scale_tril=tril).entropy()
    torch.testing.assert_close(entropy(scale, full), expected)


@pytest.mark.parametrize("full", [False, True])
def test_inequality_raises_only_low_entropy(full):
    mean, scale, _, _ = random_pair(1, 32, 3, full)
    ent = entropy(scale, full)
    beta = ent.median().item()
    _, out = entropy_projection(mean, scale, entropy_bound=beta)
    new_ent = entropy(out, full)
    low = ent < beta
    torch.testing.assert_close(new_ent[low], torch.full_like(new_ent[low], beta))
    assert torch.equal(out[~low], scale[~low])


@pytest.mark.parametrize("full", [False, True])
def test_equality_hits_bound(full):
    mean, scale, _, _ = random_pair(2, 16, 5, full)
    _, out = entropy_projection(mean, scale, entropy_bound=-1.5, equality=True)
    torch.testing.assert_close(entropy(out, full), torch.full((16,), -1.5, dtype=torch.float64))


def test_schedules():
    kw = dict(initial_entropy=4.0, target_entropy=-1.0, temperature=0.5, total_steps=100, action_dim=3)
    assert entropy_bound(None, step=10, **kw) is None
    assert entropy_bound("linear", step=0, **kw) == 4.0
    assert entropy_bound("linear", step=50, **kw) == pytest.approx(1.5)
    assert entropy_bound("linear", step=100, **kw) == pytest.approx(-1.0)
    # exp: k·target + (H0 − k·target)·temperature^(10 t/T)
    assert entropy_bound("exp", step=0, **kw) == pytest.approx(4.0)
    assert entropy_bound("exp", step=10, **kw) == pytest.approx(-3.0 + 7.0 * 0.5)
    assert entropy_bound("exp", step=100, **kw) == pytest.approx(-3.0 + 7.0 * 0.5**10)
    assert math.isfinite(entropy_bound("exp", step=1000, **kw))
