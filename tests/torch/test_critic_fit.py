"""``vf_num_epochs``: the value net trains alone before the policy's epochs, and the
policy's minibatches leave it alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from rllib_trl.torch import trpl_torch_learner
from tests.torch.test_loss import MODULE, _batch, _learner


def _update(learner, batch):
    np.random.seed(0)
    return learner.update(
        batch=copy.deepcopy(batch),
        timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 128},
        num_epochs=2,
        minibatch_size=32,
        shuffle_batch_per_epoch=True,
    )


def _vf_loss(module, batch) -> float:
    with torch.no_grad():
        values = module.compute_values(batch)
    return float((values - batch[Postprocessing.VALUE_TARGETS]).square().mean())


def test_critic_trains_first_and_alone(monkeypatch):
    _, learner, module = _learner(vf_num_epochs=5, vf_minibatch_size=16, vf_lr=0.01)
    assert set(learner._module_optimizers[MODULE]) == {f"{MODULE}_policy", f"{MODULE}_value"}
    rows = _batch(module, n=128, seed=4)
    rows[Postprocessing.VALUE_TARGETS] = 2.0 * rows["obs"][:, 0] + 1.0  # learnable
    batch = MultiAgentBatch({MODULE: SampleBatch(rows)}, env_steps=128)
    vf_before = [p.detach().clone() for p in module.vf.parameters()]
    pi_before = [p.detach().clone() for n, p in module.named_parameters() if not n.startswith("vf.")]
    loss_before = _vf_loss(module, rows)

    steps = []
    original = trpl_torch_learner.fit_critic
    monkeypatch.setattr(
        trpl_torch_learner, "fit_critic", lambda *a, **kw: (steps.append(kw), original(*a, **kw))[1]
    )
    _update(learner, batch)
    assert [(kw["num_epochs"], kw["minibatch_size"]) for kw in steps] == [(5, 16)]
    assert _vf_loss(module, rows) < 0.5 * loss_before  # 40 value steps fit the targets
    assert all(not torch.equal(a, p) for a, p in zip(vf_before, module.vf.parameters(), strict=True))
    pi_after = [p for n, p in module.named_parameters() if not n.startswith("vf.")]
    assert any(not torch.equal(a, p) for a, p in zip(pi_before, pi_after, strict=True))


def test_policy_minibatches_leave_the_value_net_alone(monkeypatch):
    """With the value-only phase skipped, an update moves the policy and not the value net."""
    _, learner, module = _learner(vf_num_epochs=3)
    monkeypatch.setattr(trpl_torch_learner, "fit_critic", lambda *a, **kw: None)
    rows = _batch(module, n=128, seed=5)
    vf_before = [p.detach().clone() for p in module.vf.parameters()]
    results = _update(learner, MultiAgentBatch({MODULE: SampleBatch(rows)}, env_steps=128))
    assert all(torch.equal(a, p) for a, p in zip(vf_before, module.vf.parameters(), strict=True))
    assert np.isfinite(results[MODULE]["vf_loss"].peek())  # still reported


def test_value_metrics_computed_once_from_the_last_minibatch(monkeypatch):
    """The policy minibatches run no value forward; the reported vf_loss is the value net's
    loss on the update's last minibatch (the net does not change in the policy epochs)."""
    _, learner, module = _learner(vf_num_epochs=3)
    monkeypatch.setattr(trpl_torch_learner, "fit_critic", lambda *a, **kw: None)
    rows = _batch(module, n=128, seed=6)
    value_calls, minibatches = [], []
    compute_values, compute_loss = module.compute_values, learner.compute_loss_for_module
    monkeypatch.setattr(
        module, "compute_values", lambda b, **kw: (value_calls.append(1), compute_values(b))[1]
    )
    monkeypatch.setattr(
        learner,
        "compute_loss_for_module",
        lambda **kw: (minibatches.append(kw["batch"]), compute_loss(**kw))[1],
    )
    results = _update(learner, MultiAgentBatch({MODULE: SampleBatch(rows)}, env_steps=128))
    assert len(minibatches) == 8 and len(value_calls) == 1  # one value forward, for the metrics
    assert results[MODULE]["vf_loss"].peek() == pytest.approx(_vf_loss(module, minibatches[-1]), rel=1e-6)


def test_masked_rows_do_not_count():
    """Rows with a False loss mask do not pull the value net (their targets are huge)."""
    from rllib_trl.torch.critic_fit import fit_critic

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(3, 1)
    obs = torch.randn(64, 3, generator=gen)
    targets = obs.sum(-1)
    mask = torch.ones(64, dtype=torch.bool)
    mask[::4] = False
    targets[~mask] = 1e6
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    np.random.seed(0)
    fit_critic(
        lambda o: net(o).squeeze(-1),
        list(net.parameters()),
        optimizer,
        obs,
        targets,
        mask,
        num_epochs=200,
        minibatch_size=16,
        grad_clip=1.0,
        grad_clip_by="global_norm",
    )
    with torch.no_grad():
        error = (net(obs).squeeze(-1) - obs.sum(-1))[mask].abs().max()
    assert error < 0.05


def test_frozen_modules_keep_their_value_net():
    """policies_to_train excludes the module: its value net is not fitted either."""
    from ray.rllib.core.learner.training_data import TrainingData

    _, learner, module = _learner(vf_num_epochs=2)
    rows = _batch(module, n=128, seed=6)
    vf_before = [p.detach().clone() for p in module.vf.parameters()]
    learner.config.multi_agent(policies_to_train=[])
    learner._make_batch_if_necessary(TrainingData(batch=MultiAgentBatch({MODULE: SampleBatch(rows)}, 128)))
    assert all(torch.equal(a, p) for a, p in zip(vf_before, module.vf.parameters(), strict=True))
    learner.config.multi_agent(policies_to_train=None)  # all: now it is fitted
    learner._make_batch_if_necessary(TrainingData(batch=MultiAgentBatch({MODULE: SampleBatch(rows)}, 128)))
    assert any(not torch.equal(a, p) for a, p in zip(vf_before, module.vf.parameters(), strict=True))


def test_checkpoint_with_other_optimizers_is_refused():
    """Saved with one shared Adam, restored where policy and value have their own."""
    import pytest

    _, shared, _ = _learner()
    _, separate, _ = _learner(vf_num_epochs=2)
    state = shared.get_state(components="optimizer")["optimizer"]
    with pytest.raises(ValueError, match="optimizers for module"):
        separate._set_optimizer_state(state)
    assert len(separate._module_optimizers[MODULE]) == 2
