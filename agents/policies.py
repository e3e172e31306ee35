"""A cross-sectional actor-critic policy: one shared network maps each asset to its weight.

``MlpPolicy`` maps the whole observation to all ``n_assets`` weights with separate output rows,
so on 24 assets x 15 years of daily data it can memorise which asset did well on which dates:
in-sample Sharpe near 2, out-of-sample negative (issue 6). Trend rules are the same function
for every asset (TSMOM: sign of the trend over its vol), and so is this policy's actor: the
weight of asset i is ``head([token_i, portfolio_token])`` with the same parameters for every
asset, on top of :class:`~trendgym.agents.extractors.AttentionExtractor` tokens. The critic is
the usual MLP over all features.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from trendgym.agents.extractors import AttentionExtractor, ObsLayout, split_window


def _layer_sizes(net_arch: Any) -> tuple[list[int], list[int]]:
    if isinstance(net_arch, dict):
        return list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
    return list(net_arch), list(net_arch)


def _mlp(sizes: list[int], first: int, activation: type[nn.Module]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(first, size), activation()]
        first = size
    return nn.Sequential(*layers), first


class CrossSectionalMlpExtractor(nn.Module):
    """SB3 ``MlpExtractor`` twin whose actor layers run per asset, with shared parameters.

    Each asset's actor input is its token and, with ``context``, the portfolio's context:
    attention tokens ``[token_i, portfolio_token]`` when ``d_model`` is given (features from
    ``AttentionExtractor``), else the asset's raw (normalised) rows of the stacked window and
    the latest global features, split from the flat observation by ``layout``.
    ``net_arch`` keeps SB3's meaning: ``pi`` sizes are the per-asset hidden layers, ``vf`` the
    critic's layers over all features.
    """

    def __init__(
        self,
        feature_dim: int,
        net_arch: Any,
        activation_fn: type[nn.Module],
        layout: ObsLayout,
        n_stack: int = 1,
        d_model: int | None = None,
        context: bool = True,
    ) -> None:
        super().__init__()
        self.layout, self.n_stack, self.d_model = layout, int(n_stack), d_model
        self.n_assets, self.context = layout.n_assets, bool(context)
        if d_model is not None:
            expected, token, ctx = d_model * (1 + self.n_assets), d_model, d_model
        else:
            expected = layout.frame_dim * self.n_stack
            token, ctx = layout.n_asset_features * self.n_stack, layout.n_global_features
        if feature_dim != expected:
            raise ValueError(
                f"features of size {feature_dim} do not match the layout ({expected} expected)"
            )
        pi_sizes, vf_sizes = _layer_sizes(net_arch)
        width_in = token + (ctx if self.context else 0)
        self.policy_net, self.asset_width = _mlp(pi_sizes, width_in, activation_fn)
        self.value_net, self.latent_dim_vf = _mlp(vf_sizes, feature_dim, activation_fn)
        self.latent_dim_pi = self.n_assets * self.asset_width

    def asset_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, n_assets, width_in): what the shared actor sees for each asset."""
        batch = features.shape[0]
        if self.d_model is not None:
            tokens = features.view(batch, 1 + self.n_assets, self.d_model)
            assets, ctx = tokens[:, 1:], tokens[:, 0]
        else:
            per_asset, global_, _ = split_window(features, self.layout, self.n_stack)
            assets = per_asset.permute(0, 2, 1, 3).reshape(batch, self.n_assets, -1)
            ctx = global_[:, -1]
        if not self.context:
            return assets
        return torch.cat([assets, ctx.unsqueeze(1).expand(-1, self.n_assets, -1)], dim=-1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(self.asset_inputs(features)).flatten(1)  # asset-major

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class PerAssetLinear(nn.Module):
    """The action mean: one shared ``Linear(width, 1)`` applied to each asset's latent."""

    def __init__(self, width: int, n_assets: int) -> None:
        super().__init__()
        self.width, self.n_assets = int(width), int(n_assets)
        self.linear = nn.Linear(self.width, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.linear(latent.view(-1, self.n_assets, self.width)).squeeze(-1)


class CrossSectionalPolicy(ActorCriticPolicy):
    """PPO/A2C policy for portfolio envs: one shared per-asset actor, an MLP critic.

    Extra keywords (``policy_kwargs``): ``obs_layout`` (the env's, needed without the
    attention extractor), ``n_stack`` (frames in the observation) and ``context`` (give the
    actor the portfolio context: globals or the attention portfolio token). Works on SB3's
    flatten extractor (raw per-asset rows) or :class:`AttentionExtractor` (its tokens).
    """

    def __init__(
        self,
        *args: Any,
        obs_layout: Mapping[str, Any] | None = None,
        n_stack: int = 1,
        context: bool = True,
        **kwargs: Any,
    ) -> None:
        # read by _build, which ActorCriticPolicy.__init__ calls
        self._layout_arg = None if obs_layout is None else ObsLayout.coerce(obs_layout).to_dict()
        self._n_stack, self._context = int(n_stack), bool(context)
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(obs_layout=self._layout_arg, n_stack=self._n_stack, context=self._context)
        return data

    def _build_mlp_extractor(self) -> None:
        extractor = self.pi_features_extractor
        if isinstance(extractor, AttentionExtractor):
            layout, n_stack, d_model = extractor.layout, extractor.n_stack, extractor.d_model
        elif isinstance(extractor, FlattenExtractor):
            if self._layout_arg is None:
                raise ValueError("CrossSectionalPolicy without attention needs obs_layout")
            layout, n_stack, d_model = ObsLayout.coerce(self._layout_arg), self._n_stack, None
        else:
            raise TypeError(
                "CrossSectionalPolicy works on the flatten or attention extractor, got "
                f"{type(extractor).__name__}"
            )
        self.mlp_extractor = CrossSectionalMlpExtractor(
            self.features_dim,
            self.net_arch,
            self.activation_fn,
            layout,
            n_stack,
            d_model,
            self._context,
        ).to(self.device)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise TypeError(
                f"CrossSectionalPolicy needs a Box action space, got {self.action_space}"
            )
        n_assets = self.mlp_extractor.n_assets
        if self.action_space.shape != (n_assets,):
            raise ValueError(
                f"action shape {self.action_space.shape} is not one weight per asset ({n_assets})"
            )
        self.action_net = PerAssetLinear(self.mlp_extractor.asset_width, n_assets).to(self.device)
        if self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=0.01))
        # the optimizer built by super() holds the replaced head's parameters: rebuild it
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
