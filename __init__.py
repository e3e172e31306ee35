"""trendgym: Gymnasium environments for momentum and trend-following research.

Importing the package registers the environment ids; it never imports torch or SB3.
"""

from trendgym.envs.registration import register_envs as _register_envs
from trendgym.envs.sb3_vec import make_sb3_vec_env  # light: SB3 is imported only when called

__version__ = "0.1.0"

__all__ = ["make_sb3_vec_env"]

_register_envs()
