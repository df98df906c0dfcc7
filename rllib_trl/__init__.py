"""rllib-trl: Differentiable Trust Region Layers (Otto et al., ICLR 2021) for Ray RLlib.

``rllib_trl.projections`` needs only PyTorch. Where Ray is installed, importing this
package also imports the algorithm and registers ``"TRPL"`` with Tune.
"""

from importlib.util import find_spec

__version__ = "0.1.0"

if find_spec("ray") is not None and find_spec("ray.rllib") is not None:
    from rllib_trl.trpl import TRPL, TRPLConfig  # noqa: F401  (registers "TRPL")

    __all__ = ["TRPL", "TRPLConfig"]
