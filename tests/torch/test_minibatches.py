"""``CyclicTensorMinibatches`` yields RLlib's minibatches, and a learner update with the
fast paths makes the same steps as one through RLlib's own iterator and apply_gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from rllib_trl.torch.learner_fast_paths import CyclicTensorMinibatches
from rllib_trl.torch.trpl_torch_learner import TRPLTorchLearner
from tests.torch.test_loss import MODULE, _batch, _learner


def _multi_agent_batch(lengths: dict[str, int]) -> MultiAgentBatch:
    gen = torch.Generator().manual_seed(0)
    return MultiAgentBatch(
        {
            mid: SampleBatch({"obs": torch.randn(n, 3, generator=gen), "row": torch.arange(n)})
            for mid, n in lengths.items()
        },
        env_steps=max(lengths.values()),
    )


def _minibatches(iterator) -> list[dict[str, dict[str, torch.Tensor]]]:
    return [
        {mid: {k: v.clone() for k, v in b.items()} for mid, b in mb.policy_batches.items()} for mb in iterator
    ]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("num_total_minibatches", [0, 11])
@pytest.mark.parametrize("lengths", [{"p0": 128}, {"p0": 100, "p1": 37}])
def test_same_minibatches_as_rllib(shuffle, num_total_minibatches, lengths):
    """Same rows in the same order, epoch boundaries (wrap-around, exact ends) and
    shuffles included, for one module and for two of different lengths."""
    kwargs = dict(
        num_epochs=3,
        minibatch_size=32,
        shuffle_batch_per_epoch=shuffle,
        num_total_minibatches=num_total_minibatches,
    )
    batch = _multi_agent_batch(lengths)
    np.random.seed(0)
    expected = _minibatches(MiniBatchCyclicIterator(copy.deepcopy(batch), **kwargs))
    rllib_iterator = MiniBatchCyclicIterator(batch, **kwargs)
    assert CyclicTensorMinibatches.covers(rllib_iterator)
    np.random.seed(0)
    got = _minibatches(CyclicTensorMinibatches(rllib_iterator))
    assert len(got) == len(expected) > 0
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.keys() == theirs.keys()
        for mid in ours:
            assert ours[mid].keys() == theirs[mid].keys()
            for key in ours[mid]:
                assert torch.equal(ours[mid][key], theirs[mid][key]), (mid, key)
    if shuffle:  # the shuffles happened: some epoch is not in the original order
        rows = torch.cat([mb["p0"]["row"] for mb in got])
        assert not torch.equal(rows, torch.arange(len(rows)) % lengths["p0"])


def test_sequences_keep_rllib_iterator():
    batch = _multi_agent_batch({"p0": 64})
    batch.policy_batches["p0"][SampleBatch.SEQ_LENS] = torch.full((8,), 8)
    assert not CyclicTensorMinibatches.covers(MiniBatchCyclicIterator(batch, minibatch_size=16))


class _StockLearner(TRPLTorchLearner):
    """TRPL's learner with RLlib's own minibatch iterator and apply_gradients."""

    _create_iterator_if_necessary = Learner._create_iterator_if_necessary
    apply_gradients = TorchLearner.apply_gradients


def test_update_matches_rllib_path(monkeypatch):
    """One update (2 epochs over 200 rows in minibatches of 64, so minibatches wrap
    around epochs, with shuffling): the same weights as through RLlib's path."""
    used = []
    original_iter = CyclicTensorMinibatches.__iter__
    monkeypatch.setattr(
        CyclicTensorMinibatches, "__iter__", lambda self: (used.append(1), original_iter(self))[1]
    )
    _, ours, module = _learner()
    _, stock, stock_module = _learner(learner_class=_StockLearner)
    assert type(stock) is _StockLearner
    stock_module.load_state_dict(module.state_dict())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    batch = MultiAgentBatch({MODULE: SampleBatch(_batch(module, n=200, seed=3))}, env_steps=200)
    for learner in (ours, stock):
        np.random.seed(7)
        learner.update(
            batch=copy.deepcopy(batch),
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 200},
            num_epochs=2,
            minibatch_size=64,
            shuffle_batch_per_epoch=True,
        )
    assert used == [1]  # ours went through CyclicTensorMinibatches, the stock one did not
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, stock_module.state_dict()[name], rtol=0, atol=1e-6, msg=name)
    assert any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())
