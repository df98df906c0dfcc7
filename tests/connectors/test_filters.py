"""Observation and return statistics merge exactly across EnvRunners."""

from __future__ import annotations

import glob
import os
import sys
import uuid

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.tune.registry import register_env

from rllib_trl.connectors.mean_std_filter import ExactMeanStdFilter
from rllib_trl.connectors.reward_scaling import REWARD_SCALE_KEY, DiscountedReturnStats
from rllib_trl.connectors.running_stats import combine, subtract
from tests.algorithm.helpers import small_config


def _push(connector: ExactMeanStdFilter, data: np.ndarray) -> None:
    for row in data:
        connector._filters[None](row, update=True)


def _stats(state):
    rs = state[None]["running_stats"][0]
    from ray.rllib.utils.filter import RunningStat

    stat = RunningStat.from_state(rs)
    return stat.num_pushes, stat.mean_array, np.sqrt(stat.sum_sq_diff_array / stat.num_pushes)


def test_combine_and_subtract_are_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 0.5, (70, 4))

    def stat(x):
        return len(x), x.mean(0), ((x - x.mean(0)) ** 2).sum(0)

    both = combine(stat(a), stat(b))
    np.testing.assert_allclose(both[1], np.concatenate([a, b]).mean(0))
    np.testing.assert_allclose(both[2], stat(np.concatenate([a, b]))[2])
    back = subtract(both, stat(a))
    np.testing.assert_allclose(back[1], b.mean(0))
    np.testing.assert_allclose(back[2], stat(b)[2])


def test_filter_merge_equals_all_samples():
    """Local reference + two runners, three sync rounds, shifted data (mean far from 0)."""
    space = gym.spaces.Box(-np.inf, np.inf, (3,))
    local, runners = ExactMeanStdFilter(), [ExactMeanStdFilter() for _ in range(2)]
    for r in [local, *runners]:
        r.input_observation_space = space
        r._init_new_filters()
    rng = np.random.default_rng(1)
    seen = []
    for round_ in range(3):
        for runner in runners:
            data = rng.normal([1.23, -5.0, 40.0], [0.02, 1.0, 3.0], (100 + 37 * round_, 3))
            seen.append(data)
            _push(runner, data)
        merged = local.merge_states([r.get_state() for r in runners])
        for r in [local, *runners]:
            r.set_state(merged)
        n, mean, std = _stats(merged)
        everything = np.concatenate(seen)
        assert n == len(everything)
        np.testing.assert_allclose(mean, everything.mean(0), rtol=1e-10)
        np.testing.assert_allclose(std, everything.std(0), rtol=1e-8)


def test_discounted_return_stats_merge():
    rng = np.random.default_rng(2)
    local, runners = DiscountedReturnStats(), [DiscountedReturnStats(), DiscountedReturnStats()]
    seen = []
    for _ in range(3):
        for runner in runners:
            g = rng.normal(10.0, 3.0, 64)
            seen.append(g)
            stat = runner._stats.get(None, (0, 0.0, 0.0))
            runner._stats[None] = combine(stat, (len(g), g.mean(), ((g - g.mean()) ** 2).sum()))
        merged = local.merge_states([r.get_state() for r in runners])
        for r in [local, *runners]:
            r.set_state(merged)
    everything = np.concatenate(seen)
    n, mean, m2 = merged["stat"][None]
    assert n == len(everything)
    np.testing.assert_allclose(mean, everything.mean())
    np.testing.assert_allclose(m2 / n, everything.var())


def test_discounted_return_stats_follow_every_return():
    """Called like an EnvRunner calls it (after each reset and each step, two envs side
    by side, episodes ending and one chunk cut mid-episode), the statistics are those of
    every discounted return G_t = γ G_(t−1) + r_t, and each episode carries
    sqrt(Var[G] + 1e-8)."""
    gamma, rng = 0.9, np.random.default_rng(3)
    connector = DiscountedReturnStats(gamma=gamma)
    queues = [[6, 3, 8], [11, 4]]  # episode lengths per env
    all_returns = []

    def new_episode():
        return SingleAgentEpisode(observations=[np.zeros(2)], actions=[], rewards=[])

    slots = [new_episode() for _ in queues]
    pending = [list(q) for q in queues]
    returns_so_far = [[] for _ in queues]
    connector(rl_module=None, batch={}, episodes=slots)
    step = 0
    while any(pending):
        step += 1
        for i, episode in enumerate(slots):
            if not pending[i]:
                continue
            reward = float(rng.normal(1.0, 2.0))
            g = (returns_so_far[i][-1] if returns_so_far[i] else 0.0) * gamma + reward
            returns_so_far[i].append(g)
            done = len(returns_so_far[i]) == pending[i][0]
            episode.add_env_step(np.zeros(2), 0, reward, terminated=done)
        connector(rl_module=None, batch={}, episodes=[e for i, e in enumerate(slots) if pending[i]])
        if step == 4:
            slots[1] = slots[1].cut()  # a new chunk of the same episode, as sample() ends
        for i, episode in enumerate(slots):
            if pending[i] and episode.is_done:
                all_returns += returns_so_far[i]
                returns_so_far[i] = []
                pending[i].pop(0)
                slots[i] = new_episode()
                connector(rl_module=None, batch={}, episodes=[slots[i]])
    n, mean, m2 = connector._stats[None]
    assert n == sum(sum(q) for q in queues) == len(all_returns)
    np.testing.assert_allclose(mean, np.mean(all_returns), rtol=1e-12)
    np.testing.assert_allclose(m2 / n, np.var(all_returns), rtol=1e-12)
    np.testing.assert_allclose(
        slots[0].custom_data[REWARD_SCALE_KEY], np.sqrt(np.var(all_returns) + 1e-8), rtol=1e-12
    )
    assert not connector._returns  # finished episodes are forgotten


class RecordingEnv(gym.Wrapper):
    """Hopper that saves every observation it emits, to compare with the filter."""

    def __init__(self, env, log_dir):
        super().__init__(env)
        self.log_dir, self.seen = log_dir, []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.seen.append(obs)
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.seen.append(out[0])
        np.save(os.path.join(self.log_dir, f"{os.getpid()}-{id(self)}.npy"), np.asarray(self.seen))
        return out


def test_two_env_runners_sync_exact_statistics(ray_local, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    name = f"recording-hopper-{uuid.uuid4().hex[:6]}"
    register_env(name, lambda cfg: RecordingEnv(gym.make("Hopper-v5"), cfg["log_dir"]))
    config = (
        small_config()
        .environment(name, env_config={"log_dir": str(tmp_path)})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
    )
    algo = config.build_algo()
    try:
        for _ in range(2):
            algo.train()
        state = algo.env_runner_group.local_env_runner.get_state()["env_to_module_connector"]
    finally:
        algo.stop()
    n, mean, std = _stats(state["ExactMeanStdFilter"])
    observations = np.concatenate([np.load(f) for f in glob.glob(str(tmp_path / "*.npy"))])
    assert len(glob.glob(str(tmp_path / "*.npy"))) == 2  # both EnvRunners sampled
    assert n == len(observations)
    np.testing.assert_allclose(mean, observations.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, observations.std(0), rtol=1e-6, atol=1e-9)


def test_discounted_return_stats_per_agent_with_staggered_ends():
    """Two agents in one multi-agent episode; agent 0 terminates after 2 steps while agent 1
    plays 5: each agent's statistics hold exactly its own returns, counted once."""
    from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

    gamma = 0.9
    connector = DiscountedReturnStats(gamma=gamma)
    episode = MultiAgentEpisode()
    obs = np.zeros(2, dtype=np.float32)
    episode.add_env_reset(observations={0: obs, 1: obs}, infos={})
    connector(rl_module=None, batch={}, episodes=[episode])
    rewards = {0: [1.0, 2.0], 1: [0.5, -1.0, 3.0, 0.0, 2.0]}
    for t in range(5):
        acting = [a for a in (0, 1) if t < len(rewards[a])]
        terminateds = {a: True for a in acting if t == len(rewards[a]) - 1}
        episode.add_env_step(
            observations={a: obs for a in acting},
            actions=dict.fromkeys(acting, 0),
            rewards={a: rewards[a][t] for a in acting},
            terminateds={**terminateds, "__all__": t == 4},
            truncateds={"__all__": False},
        )
        connector(rl_module=None, batch={}, episodes=[episode])
    for agent_id, agent_rewards in rewards.items():
        g, returns = 0.0, []
        for r in agent_rewards:
            g = gamma * g + r
            returns.append(g)
        n, mean, m2 = connector._stats[agent_id]
        assert n == len(returns)
        np.testing.assert_allclose(mean, np.mean(returns), rtol=1e-12)
        np.testing.assert_allclose(m2 / n, np.var(returns), rtol=1e-12, atol=1e-12)
    assert not connector._seen_t and not connector._returns  # the finished episode is forgotten


def test_eval_sync_keeps_its_old_path():
    """YAML files and checkpoints written before the move name rllib_trl.eval_sync."""
    from rllib_trl.connectors.eval_sync import SyncEvalObservationFilter
    from rllib_trl.eval_sync import SyncEvalObservationFilter as old_path

    assert old_path is SyncEvalObservationFilter


def _episodes(obs_space, rows):
    episodes = []
    for row in rows:
        episode = SingleAgentEpisode(observation_space=obs_space)
        episode.add_env_reset(observation=row)
        episodes.append(episode)
    return episodes


@pytest.mark.parametrize(
    "shape, dtype, clip", [((5,), np.float32, 3.0), ((5,), np.float64, 3.0), ((4, 3, 2), np.float32, 0.0)]
)
def test_vectorised_call_equals_rllib_one_by_one(shape, dtype, clip):
    """ExactMeanStdFilter's one-call update and normalisation gives RLlib's
    MeanStdFilter results (pushes one observation at a time): the normalised
    observations written into the episodes and every RunningStat field, over several
    vector steps starting from empty statistics, and with update_stats=False."""
    from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter

    space = gym.spaces.Box(-np.inf, np.inf, shape, dtype)
    ours, theirs = ExactMeanStdFilter(clip_by_value=clip), MeanStdFilter(clip_by_value=clip)
    for connector in (ours, theirs):
        connector.input_observation_space = space
        connector._init_new_filters()
    rng = np.random.default_rng(0)
    for step in range(6):
        scales = np.resize([1, 10, 0.1, 5, 100], shape)
        rows = (rng.normal(size=(8, *shape)) * scales + step).astype(dtype)
        ep_ours, ep_theirs = _episodes(space, rows), _episodes(space, rows)
        ours(rl_module=None, batch={}, episodes=ep_ours)
        theirs(rl_module=None, batch={}, episodes=ep_theirs)
        for a, b in zip(ep_ours, ep_theirs, strict=True):
            np.testing.assert_allclose(a.get_observations(-1), b.get_observations(-1), rtol=1e-5, atol=1e-6)
        for name in ("running_stats", "buffer"):
            rs_ours, rs_theirs = getattr(ours._filters[None], name), getattr(theirs._filters[None], name)
            assert rs_ours.num_pushes == rs_theirs.num_pushes == 8 * (step + 1) or name == "buffer"
            assert rs_ours.num_pushes_delta == rs_theirs.num_pushes_delta
            for field in ("mean_array", "sum_sq_diff_array", "mean_delta_array", "sum_sq_diff_delta_array"):
                np.testing.assert_allclose(
                    getattr(rs_ours, field), getattr(rs_theirs, field), rtol=1e-10, atol=1e-9, err_msg=field
                )
    ours._update_stats = theirs._update_stats = False
    rows = rng.normal(size=(8, *shape)).astype(dtype)
    ep_ours, ep_theirs = _episodes(space, rows), _episodes(space, rows)
    ours(rl_module=None, batch={}, episodes=ep_ours)
    theirs(rl_module=None, batch={}, episodes=ep_theirs)
    for a, b in zip(ep_ours, ep_theirs, strict=True):
        np.testing.assert_allclose(a.get_observations(-1), b.get_observations(-1), rtol=1e-5, atol=1e-6)
    assert ours._filters[None].running_stats.num_pushes == 48


def _vector_run(use_push_step: bool, skip_at: int | None = None) -> tuple[dict, list[list[float]]]:
    """Three sub-envs stepped together as a vector env with autoreset: a finished episode
    is replaced by a new one, which gets its reset observation at the next step; one
    chunk is cut mid-episode. Returns the statistics' state and every step's scales."""
    gamma, rng = 0.9, np.random.default_rng(5)
    connector = DiscountedReturnStats(gamma=gamma)
    lengths = [[5, 3, 7], [9, 4], [2, 2, 2, 2]]
    slots = [SingleAgentEpisode() for _ in lengths]
    scales = []
    for step in range(20):
        rewards, moved = np.zeros(len(slots)), []
        for i, episode in enumerate(slots):
            if not episode.is_reset:
                episode.add_env_reset(np.zeros(2))
                moved.append(False)
                continue
            rewards[i] = rng.normal(1.0, 2.0)
            done = bool(lengths[i]) and len(episode) + episode.t_started + 1 == lengths[i][0]
            episode.add_env_step(np.zeros(2), 0, rewards[i], terminated=done)
            if step == skip_at and i == 0 and not done:  # env 0 moves twice before a call
                rewards[i] = rng.normal(1.0, 2.0)
                episode.add_env_step(np.zeros(2), 0, rewards[i])
            moved.append(True)
        if use_push_step:
            connector.push_step(slots, rewards, moved)
        else:
            connector(rl_module=None, batch={}, episodes=slots)
        scales.append([e.custom_data[REWARD_SCALE_KEY] for e in slots])
        if step == 6:
            slots[1] = slots[1].cut()
        for i, episode in enumerate(slots):
            if episode.is_done:
                lengths[i].pop(0)
                slots[i] = SingleAgentEpisode()
    return connector.get_state(), scales


@pytest.mark.parametrize("skip_at", [None, 8])
def test_push_step_equals_call(skip_at):
    """``push_step`` (TRPLEnvRunner's loop) updates the return statistics as ``__call__``
    does on the same vector steps, also when an episode moved twice between calls."""
    state, scales = _vector_run(use_push_step=True, skip_at=skip_at)
    assert (state, scales) == _vector_run(use_push_step=False, skip_at=skip_at)
    assert state["stat"][None][0] > 30 and len(set(map(tuple, scales))) > 10
