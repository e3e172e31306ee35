"""trendgym: Gymnasium environments for momentum and trend-following research.

Importing the package registers the environment ids; it never imports torch or SB3.
"""

from trendgym.envs.registration import register_envs as _register_envs

__version__ = "0.1.0"

_register_envs()
