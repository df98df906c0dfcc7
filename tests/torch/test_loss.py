"""The learner's loss equals a hand computation from the projection API, and each
loss term's gradient reaches only the parameters it should."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_trl.projections import get_trust_region
from rllib_trl.torch.distributions import make_distribution, pack
from rllib_trl.torch.learner_fast_paths import adam, adam_step
from rllib_trl.torch.trpl_loss import standardized
from tests.algorithm.helpers import small_config

MODULE = "default_policy"


def _learner(projection="kl", cov_type="diag", contextual_std=False, **training):
    config = small_config(projection=projection, cov_type=cov_type, contextual_std=contextual_std, **training)
    env = gym.make("Hopper-v5")
    learner = config.build_learner(env=env)
    env.close()
    return config, learner, learner.module[MODULE].unwrapped()


def _batch(module, n=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 11, generator=gen)
    with torch.no_grad():
        mean, scale = module.mean_and_scale(obs)
        old_mean = mean + 0.3 * torch.randn(mean.shape, generator=gen)
        old_scale = scale * 1.2 if not module.full else scale * 1.2
        old_inputs = pack(old_mean, old_scale, module.full)
        old_dist = make_distribution(old_mean, old_scale, module.full)
        actions = old_dist.sample()
        logp = old_dist.logp(actions)
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: logp,
        Columns.ACTION_DIST_INPUTS: old_inputs,
        Postprocessing.ADVANTAGES: torch.randn(n, generator=gen),
        Postprocessing.VALUE_TARGETS: torch.randn(n, generator=gen) * 5,
        Columns.LOSS_MASK: torch.ones(n, dtype=torch.bool),
    }


def _hand_terms(config, module, batch):
    """policy, trust-region and value losses from the public projection API."""
    mean, scale = module.mean_and_scale(batch[Columns.OBS])
    from rllib_trl.torch.distributions import unpack

    old_mean, old_scale = unpack(batch[Columns.ACTION_DIST_INPUTS], module.full)
    tr = get_trust_region(config.projection, scale_prec=config.scale_prec)
    p_mean, p_scale = tr.project(
        mean.double(),
        scale.double(),
        old_mean.double(),
        old_scale.double(),
        mean_bound=config.mean_bound,
        cov_bound=config.cov_bound,
    )
    p_mean, p_scale = p_mean.float(), p_scale.float()
    logp = make_distribution(p_mean, p_scale, module.full).logp(batch[Columns.ACTIONS])
    ratio = torch.exp(logp - batch[Columns.ACTION_LOGP])
    policy_loss = -(batch[Postprocessing.ADVANTAGES] * ratio).mean()
    d_mean, d_cov = tr.parts(mean, scale, p_mean.detach(), p_scale.detach())
    dist = d_mean + d_cov if module.contextual_std else d_mean
    tr_loss = config.trust_region_coeff * dist.mean()
    vf_loss = (module.compute_values(batch) - batch[Postprocessing.VALUE_TARGETS]).square().mean()
    return policy_loss, tr_loss, vf_loss


@pytest.mark.parametrize(
    "projection, cov_type, contextual",
    [
        ("kl", "diag", False),
        ("kl", "full", True),
        ("wasserstein", "diag", True),
        ("frobenius", "full", False),
    ],
)
def test_loss_matches_hand_computation(projection, cov_type, contextual):
    config, learner, module = _learner(projection, cov_type, contextual)
    batch = _batch(module)
    fwd_out = module.forward_train(batch)
    loss = learner.compute_loss_for_module(module_id=MODULE, config=config, batch=batch, fwd_out=fwd_out)
    policy_loss, tr_loss, vf_loss = _hand_terms(config, module, batch)
    assert tr_loss.item() > 0  # the batch has states outside the region
    torch.testing.assert_close(loss, policy_loss + tr_loss + vf_loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("contextual", [False, True])
def test_gradient_routing(contextual):
    config, learner, module = _learner("kl", "diag", contextual)
    batch = _batch(module, seed=1)
    vf_params = list(module.vf.parameters())
    vf_ids = {id(p) for p in vf_params}
    pi_params = [p for p in module.parameters() if id(p) not in vf_ids]
    policy_loss, tr_loss, vf_loss = _hand_terms(config, module, batch)

    vf_grads = torch.autograd.grad(vf_loss, pi_params, allow_unused=True)
    assert all(g is None for g in vf_grads), "value loss reached policy parameters"
    pi_grads = torch.autograd.grad(policy_loss + tr_loss, vf_params, allow_unused=True)
    assert all(g is None for g in pi_grads), "policy / trust-region loss reached the value net"

    # The learner's total loss splits the same way.
    loss = learner.compute_loss_for_module(
        module_id=MODULE, config=config, batch=batch, fwd_out=module.forward_train(batch)
    )
    total_vf = torch.autograd.grad(loss, vf_params, retain_graph=True)
    expect_vf = torch.autograd.grad(vf_loss, vf_params)
    for a, b in zip(total_vf, expect_vf, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    _, tr2, _ = _hand_terms(config, module, batch)
    p2, _, _ = _hand_terms(config, module, batch)
    total_pi = torch.autograd.grad(loss, pi_params, allow_unused=True)
    expect_pi = torch.autograd.grad(p2 + tr2, pi_params, allow_unused=True)
    for a, b in zip(total_pi, expect_pi, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_two_optimizers_split_parameters():
    config, learner, module = _learner(lr=3e-4, vf_lr=1e-3)
    policy_opt = learner.get_optimizer(MODULE, "policy")
    value_opt = learner.get_optimizer(MODULE, "value")
    vf_ids = {id(p) for p in module.vf.parameters()}
    value_ids = {id(p) for g in value_opt.param_groups for p in g["params"]}
    policy_ids = {id(p) for g in policy_opt.param_groups for p in g["params"]}
    assert value_ids == vf_ids
    assert policy_ids.isdisjoint(vf_ids)
    assert policy_ids | value_ids == {id(p) for p in module.parameters()}


@pytest.mark.parametrize(
    ("training", "names"),
    [
        ({"lr": 3e-4, "vf_lr": 3e-4}, {"default"}),
        ({"lr": 3e-4, "vf_lr": 1e-3}, {"policy", "value"}),
        ({"lr": 3e-4, "vf_lr": 3e-4, "grad_clip": 0.5, "grad_clip_by": "global_norm"}, {"policy", "value"}),
        ({"lr": 3e-4, "vf_lr": 3e-4, "grad_clip": 0.5, "grad_clip_by": "value"}, {"default"}),
    ],
)
def test_one_optimizer_only_when_it_makes_the_same_steps(training, names):
    _, learner, module = _learner(**training)
    optimizers = dict(learner.get_optimizers_for_module(MODULE))
    assert set(optimizers) == names
    ids = [id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in module.parameters())


def test_shared_optimizer_steps_like_two():
    """Adam is per parameter: one optimizer over both nets equals two with the same lr."""
    _, shared, shared_module = _learner(lr=1e-3, vf_lr=1e-3)
    _, split, split_module = _learner(lr=1e-3, vf_lr=1e-3 * (1 + 1e-12))  # forces two optimizers
    split_module.load_state_dict(shared_module.state_dict())
    assert len(dict(split.get_optimizers_for_module(MODULE))) == 2
    before = {k: v.clone() for k, v in shared_module.state_dict().items()}
    batch = _batch(shared_module)
    for learner in (shared, split):
        for _ in range(3):
            learner._update({MODULE: dict(batch)})  # one minibatch step: loss, grads, Adam
    split_state = split_module.state_dict()
    for name, a in shared_module.state_dict().items():
        b = split_state[name]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
        assert not torch.equal(a, before[name]), f"{name} did not move"


def test_adam_is_fused_and_steps_like_the_loop():
    _, learner, _ = _learner()
    for _, optimizer in learner.get_optimizers_for_module(MODULE):
        assert optimizer.defaults["fused"] is True
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen)]
    fused = [torch.nn.Parameter(t.clone()) for t in start]
    loop = [torch.nn.Parameter(t.clone()) for t in start]
    opt_fused, opt_loop = adam(fused), torch.optim.Adam(loop, foreach=False)
    for _ in range(20):
        for a, b in zip(fused, loop, strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt_fused.step()
        opt_loop.step()
    for a, b, s in zip(fused, loop, start, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a, s)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_step_is_optimizer_step_bit_for_bit(weight_decay):
    """The fused kernel called directly takes ``Optimizer.step``'s step exactly, across an
    lr change; it declines (does nothing) for a first step, a missing gradient or a hook."""
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen)]
    ours, theirs = ([torch.nn.Parameter(t.clone()) for t in start] for _ in range(2))
    opt_ours, opt_theirs = adam(ours), adam(theirs)
    for opt in (opt_ours, opt_theirs):
        opt.param_groups[0]["weight_decay"] = weight_decay
    for step in range(12):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        if step == 6:
            for opt in (opt_ours, opt_theirs):
                opt.param_groups[0]["lr"] = 1e-2
        assert adam_step(opt_ours) is (step > 0)  # the first step creates the state
        if step == 0:
            opt_ours.step()
        opt_theirs.step()
    for a, b, s in zip(ours, theirs, start, strict=True):
        assert torch.equal(a, b) and not torch.equal(a, s)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_ours.state[a][key], opt_theirs.state[b][key])
    ours[0].grad = None
    assert not adam_step(opt_ours)  # some parameters without a gradient
    ours[1].grad = None
    before = [a.detach().clone() for a in ours]
    assert adam_step(opt_ours)  # none with one: skipped, as step() skips them
    assert all(torch.equal(a, b) for a, b in zip(ours, before, strict=True))
    ours[0].grad, ours[1].grad = torch.zeros_like(ours[0]), torch.zeros_like(ours[1])
    handle = opt_ours.register_step_pre_hook(lambda *args: None)
    assert not adam_step(opt_ours)
    handle.remove()
    assert adam_step(opt_ours)


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_apply_gradients_matches_rllib(bad):
    """One finiteness check, same result as RLlib's per-tensor handling: a step with
    finite gradients, and RLlib's zeroing of non-finite entries otherwise."""
    from ray.rllib.core.learner.torch.torch_learner import TorchLearner

    _, ours, module = _learner()
    _, ref, ref_module = _learner()
    ref_module.load_state_dict(module.state_dict())
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen) for p in ours._params.values()]
    if bad is not None:
        grads[0].view(-1)[0] = bad
    before = {k: v.clone() for k, v in module.state_dict().items()}
    ours.apply_gradients({pid: g.clone() for pid, g in zip(ours._params, grads, strict=True)})
    TorchLearner.apply_gradients(ref, {pid: g.clone() for pid, g in zip(ref._params, grads, strict=True)})
    for name, value in module.state_dict().items():
        assert torch.isfinite(value).all(), name
        torch.testing.assert_close(value, ref_module.state_dict()[name], rtol=0, atol=0, msg=name)
        assert not torch.equal(value, before[name]), f"{name} did not move"


def test_off_policyness_reported_once_per_update():
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
    from ray.rllib.utils.metrics import DIFF_NUM_GRAD_UPDATES_VS_SAMPLER_POLICY as KEY
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME, WEIGHTS_SEQ_NO

    _, learner, module = _learner()
    batch = _batch(module, n=64)
    batch[WEIGHTS_SEQ_NO] = torch.zeros(64, dtype=torch.int64)
    batch = MultiAgentBatch({MODULE: SampleBatch(batch)}, env_steps=64)
    calls = []
    original = learner.metrics.log_dict
    learner.metrics.log_dict = lambda d, **kw: (calls.append(d), original(d, **kw))[1]
    results = learner.update(
        batch=batch, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 64}, num_epochs=2, minibatch_size=16
    )
    assert sum(any(KEY in str(k) for k in d) for d in calls) == 1  # 8 minibatches, 1 gather
    assert results[MODULE][KEY].peek() == 1.0  # sampled with seq no 0, one update since


def test_steps_trained_metrics_match_rllibs():
    """Counted per minibatch and logged once per update: the same reduced values as
    RLlib's per-minibatch logging, in two updates."""
    import types

    from ray.rllib.core import ALL_MODULES
    from ray.rllib.core.learner.learner import Learner
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
    from ray.rllib.utils.metrics import (
        MODULE_TRAIN_BATCH_SIZE_MEAN,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
        NUM_ENV_STEPS_TRAINED,
        NUM_ENV_STEPS_TRAINED_LIFETIME,
        NUM_MODULE_STEPS_TRAINED,
        NUM_MODULE_STEPS_TRAINED_LIFETIME,
        WEIGHTS_SEQ_NO,
    )

    reduced = []
    for rllibs in (False, True):
        _, learner, module = _learner()
        if rllibs:
            learner._log_steps_trained_metrics = types.MethodType(Learner._log_steps_trained_metrics, learner)
        values = []
        for seed in (0, 1):
            batch = MultiAgentBatch({MODULE: SampleBatch(_batch(module, n=64, seed=seed))}, env_steps=64)
            results = learner.update(
                batch=batch, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 64}, num_epochs=3, minibatch_size=24
            )
            module_keys = (WEIGHTS_SEQ_NO, MODULE_TRAIN_BATCH_SIZE_MEAN, NUM_MODULE_STEPS_TRAINED)
            values.append({key: results[MODULE][key].peek() for key in module_keys})
            values[-1]["lifetime"] = results[MODULE][NUM_MODULE_STEPS_TRAINED_LIFETIME].peek()
            for key in (NUM_MODULE_STEPS_TRAINED, NUM_MODULE_STEPS_TRAINED_LIFETIME):
                values[-1][("all", key)] = results[ALL_MODULES][key].peek()
            for key in (NUM_ENV_STEPS_TRAINED, NUM_ENV_STEPS_TRAINED_LIFETIME):
                values[-1][key] = results[ALL_MODULES][key].peek()
        reduced.append(values)
    ours, theirs = reduced
    assert ours == theirs
    assert theirs[1]["lifetime"] == 8 * 24  # 8 minibatches of 24 in the update: the values are real


@pytest.mark.parametrize("entropy_coeff", [0.0, 0.01])
def test_entropy_bonus_and_metric(entropy_coeff):
    """The bonus −c·H(π̃) enters the loss only for c ≠ 0; H(π̃) is reported either way."""
    config, learner, module = _learner(entropy_coeff=entropy_coeff)
    batch = _batch(module, seed=2)
    loss = learner.compute_loss_for_module(
        module_id=MODULE, config=config, batch=batch, fwd_out=module.forward_train(batch)
    )
    policy_loss, tr_loss, vf_loss = _hand_terms(config, module, batch)
    projected = learner._last_minibatch[MODULE].projected
    entropy = make_distribution(*projected, module.full).entropy().mean()
    expected = policy_loss + tr_loss + vf_loss - entropy_coeff * entropy
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    metrics = learner._last_minibatch[MODULE].metrics()
    torch.testing.assert_close(metrics["entropy"], entropy)


def test_restored_optimizer_keeps_the_fused_kernel():
    """A checkpoint written before fused Adam (its param groups say fused=None) restores
    its moments and keeps the kernel this device has."""
    from ray.rllib.core import COMPONENT_OPTIMIZER

    _, learner, module = _learner()
    batch = _batch(module)
    learner._update({MODULE: dict(batch)})
    state = learner.get_state(components=COMPONENT_OPTIMIZER)
    for optimizer_state in state[COMPONENT_OPTIMIZER].values():
        for group in optimizer_state["state"]["param_groups"]:
            group["fused"] = None  # as saved by a non-fused Adam
    _, restored, _ = _learner()
    restored.set_state(state)
    for (_, a), (_, b) in zip(
        learner.get_optimizers_for_module(MODULE), restored.get_optimizers_for_module(MODULE), strict=True
    ):
        assert all(group["fused"] is True for group in b.param_groups)
        for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True):
            torch.testing.assert_close(a.state[p]["exp_avg"], b.state[q]["exp_avg"])


def test_ratio_clipping_follows_clip_param():
    """With ``clip_param`` ε the surrogate is PPO's min(A·r, A·clip(r, 1 − ε, 1 + ε)) of the
    projected policy's ratio r; without it, A·r."""
    from rllib_trl.torch.trpl_loss import TRPLSettings, policy_terms

    gen = torch.Generator().manual_seed(0)
    n, k = 64, 3
    old = (torch.randn(n, k, generator=gen), torch.rand(n, k, generator=gen) + 0.5)
    raw = (old[0] + 0.5 * torch.randn(n, k, generator=gen), old[1] * 1.3)
    old_dist = make_distribution(*old, False)
    actions = old_dist.sample()
    logp = old_dist.logp(actions)
    advantages = torch.randn(n, generator=gen)
    common = dict(
        projection="kl",
        mean_bound=0.5,
        cov_bound=0.5,
        trust_region_coeff=0.0,
        scale_prec=True,
        projection_dtype="float64",
        entropy_eq=False,
        entropy_first=False,
    )
    losses = {}
    for clip in (None, 0.1):
        terms = policy_terms(
            TRPLSettings(**common, clip_param=clip),
            raw,
            old,
            actions=actions,
            action_logp=logp,
            advantages=advantages,
            full=False,
            contextual_std=False,
            beta=None,
            mean_of=torch.mean,
        )
        ratio = torch.exp(make_distribution(*terms["projected"], False).logp(actions) - logp)
        losses[clip] = (terms["policy_loss"], ratio)
    ratio = losses[None][1]
    assert ((ratio - 1).abs() > 0.1).any()  # some ratios are clipped
    torch.testing.assert_close(losses[None][0], -(advantages * ratio).mean())
    clipped = torch.min(advantages * ratio, advantages * ratio.clamp(0.9, 1.1))
    torch.testing.assert_close(losses[0.1][0], -clipped.mean())
    assert not torch.allclose(losses[None][0], losses[0.1][0])


def test_minibatch_advantage_normalization():
    """ "minibatch": the loss uses each minibatch's advantages standardised over its own
    valid rows, (A − mean) / (std + 1e-8); "batch" (default) uses them as GAE left them."""
    config, learner, module = _learner(advantage_normalization="minibatch")
    batch = _batch(module, seed=2)
    raw_advantages = 3.0 * batch[Postprocessing.ADVANTAGES] + 5.0
    batch[Postprocessing.ADVANTAGES] = raw_advantages
    fwd_out = module.forward_train(batch)
    loss = learner.compute_loss_for_module(module_id=MODULE, config=config, batch=batch, fwd_out=fwd_out)
    hand = dict(batch)
    hand[Postprocessing.ADVANTAGES] = (raw_advantages - raw_advantages.mean()) / (raw_advantages.std() + 1e-8)
    torch.testing.assert_close(loss, sum(_hand_terms(config, module, hand)), rtol=1e-5, atol=1e-6)
    # Padded rows (a large advantage there) neither shift nor scale the valid ones.
    padded = dict(batch)
    padded[Columns.LOSS_MASK] = torch.arange(len(raw_advantages)) < 20
    padded[Postprocessing.ADVANTAGES] = torch.where(padded[Columns.LOSS_MASK], raw_advantages, 1e4)
    masked = learner.compute_loss_for_module(module_id=MODULE, config=config, batch=padded, fwd_out=fwd_out)
    rows = {key: value[:20] for key, value in batch.items()}
    valid = raw_advantages[:20]
    policy, region, vf_loss = _hand_terms(config, module, rows)
    rows[Postprocessing.ADVANTAGES] = (valid - valid.mean()) / (valid.std() + 1e-8)
    policy, region, _ = _hand_terms(config, module, rows)
    torch.testing.assert_close(masked, policy + region + vf_loss, rtol=1e-5, atol=1e-6)
    plain_config, plain_learner, _ = _learner()
    plain_learner.module[MODULE].unwrapped().load_state_dict(module.state_dict())
    plain = plain_learner.compute_loss_for_module(
        module_id=MODULE, config=plain_config, batch=batch, fwd_out=fwd_out
    )
    torch.testing.assert_close(plain, sum(_hand_terms(config, module, batch)), rtol=1e-5, atol=1e-6)
    assert abs(plain.item() - loss.item()) > 1e-3


def test_standardized_ignores_padded_rows():
    advantages = torch.tensor([1.0, 2.0, 4.0, 100.0, -50.0])
    mask = torch.tensor([True, True, True, False, False])
    out = standardized(advantages, mask)
    valid = torch.tensor([1.0, 2.0, 4.0])
    torch.testing.assert_close(out[:3], (valid - valid.mean()) / (valid.std() + 1e-8))
    torch.testing.assert_close(standardized(valid), out[:3])
    one = torch.tensor([True, False, False, False, False])
    torch.testing.assert_close(standardized(advantages, one), advantages - 1.0)  # no std: centred
