"""Policies that act in trendgym's envs: baselines and Stable-Baselines3 agents.

Every policy follows SB3's ``predict(obs, state=None, episode_start=None, deterministic=True)
-> (action, state)``. Names load lazily, so ``import trendgym.agents`` never pulls in torch.
"""

from importlib import import_module
from typing import Any

# public name -> submodule that defines it (add yours here; keep it sorted by module)
_EXPORTS: dict[str, str] = {
    "Aggressive": "execution",
    "AlmgrenChriss": "execution",
    "PassiveLimit": "execution",
    "TWAP": "execution",
    "VWAP": "execution",
    "almgren_chriss_trajectory": "execution",
    "execution_baseline_table": "execution",
    "AttentionExtractor": "extractors",
    "LSTMExtractor": "extractors",
    "MLPExtractor": "extractors",
    "ObsLayout": "extractors",
    "export_attention": "extractors",
    "TrainedAgent": "loading",
    "load": "loading",
    "CrossSectionalPolicy": "policies",
    "CSMOM": "portfolio",
    "EqualWeight": "portfolio",
    "RiskParity": "portfolio",
    "RiskParityTrend": "portfolio",
    "StaticTSMOM": "portfolio",
    "portfolio_baseline_table": "portfolio",
    "tsmom_weights": "portfolio",
    "MaskAwareVecNormalize": "sb3",
    "default_hyperparameters": "sb3",
    "make_model": "sb3",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trendgym.agents' has no attribute {name!r}")
    return getattr(import_module(f"trendgym.agents.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
