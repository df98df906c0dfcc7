"""Reading an RLlib algorithm checkpoint without building the algorithm (no EnvRunners,
no Ray instance): its config, its RL modules and its connector pipelines."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.checkpoints import Checkpointable

from rllib_trl.cli.errors import UsageError

MODULES_DIR = Path("learner_group", "learner", "rl_module")


@dataclass
class Checkpoint:
    """An algorithm checkpoint's pieces, with the observation filter frozen."""

    path: Path
    config: Any  # the AlgorithmConfig, or Tune's config dict
    multi_module: MultiRLModule
    env_to_module: Any
    module_to_env: Any

    @property
    def modules(self) -> dict[str, RLModule]:
        return dict(self.multi_module.items())

    @property
    def multi_agent(self) -> bool:
        return list(self.multi_module.keys()) != [DEFAULT_MODULE_ID]

    def setting(self, key: str, default: Any = None) -> Any:
        """A config value, whether the config was pickled as an object or a dict."""
        if isinstance(self.config, dict):
            return self.config.get(key, default)
        return getattr(self.config, key, default)

    @property
    def env_spec(self) -> tuple[Any, dict]:
        return self.setting("env"), dict(self.setting("env_config") or {})

    def policy_of(self, agent_id: Any) -> str:
        """The module ``policy_mapping_fn`` maps ``agent_id`` to (called without an episode)."""
        try:
            return self.setting("policy_mapping_fn")(agent_id, None)
        except Exception as err:  # a mapping that reads the episode
            raise UsageError(
                f"policy_mapping_fn({agent_id!r}, episode=None) failed ({type(err).__name__}); "
                "this needs a mapping from the agent id alone"
            ) from None

    def observation_filter(self) -> MeanStdFilter | None:
        return next((p for p in self.env_to_module.connectors if isinstance(p, MeanStdFilter)), None)


def _config(path: Path) -> Any:
    try:
        with open(path / "class_and_ctor_args.pkl", "rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise UsageError(f"not a whole algorithm checkpoint (no class_and_ctor_args.pkl): {path}") from None
    except (ImportError, AttributeError) as err:
        raise UsageError(
            f"cannot read the checkpoint's config ({err}): the classes and functions the training "
            "script used (env, callbacks, mapping function) must be importable here"
        ) from None
    args, kwargs = data["ctor_args_and_kwargs"]
    return kwargs.get("config") if kwargs else args[0]


def load_checkpoint(checkpoint: str) -> Checkpoint:
    # absolute: RLlib reads the module and connector folders through pyarrow, which takes
    # a relative path for a URI without a scheme and fails
    path = Path(checkpoint).expanduser().resolve()
    if not (path / "rllib_checkpoint.json").is_file():
        raise UsageError(f"not an RLlib algorithm checkpoint (no rllib_checkpoint.json): {checkpoint}")
    import rllib_trl  # noqa: F401  (classes the pickles refer to)

    multi_module = MultiRLModule.from_checkpoint(str(path / MODULES_DIR))
    env_to_module = Checkpointable.from_checkpoint(str(path / "env_runner" / "env_to_module_connector"))
    module_to_env = Checkpointable.from_checkpoint(str(path / "env_runner" / "module_to_env_connector"))
    loaded = Checkpoint(path, _config(path), multi_module, env_to_module, module_to_env)
    obs_filter = loaded.observation_filter()
    if obs_filter is not None:
        obs_filter._update_stats = False  # act with the training statistics, frozen
    return loaded
