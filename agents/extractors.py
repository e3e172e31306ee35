"""Feature extractors for SB3 policies over trendgym's observation layout.

Portfolio observations are ``concat([per_asset.reshape(-1), global_features])`` per frame, with
``per_asset`` of shape (n_assets, n_asset_features) and a per-asset ``mask`` feature (1 live,
0 masked). ``VecFrameStack`` concatenates ``n_stack`` such frames, oldest first. Every extractor
here works on any flat ``Box`` observation; given an ``obs_layout`` it also zeroes masked assets
(``VecNormalize`` shifts their zeros away from zero) and, for attention, excludes them as keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


@dataclass(frozen=True)
class ObsLayout:
    """Where each feature sits in one observation frame (the portfolio env's ``obs_layout``)."""

    n_assets: int
    asset_features: tuple[str, ...]
    global_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.n_assets, int | np.integer) or self.n_assets < 1:
            raise ValueError(f"obs_layout n_assets must be a positive int, got {self.n_assets!r}")
        if len(self.asset_features) < 1:
            raise ValueError("obs_layout asset_features must name at least one feature")
        if len(set(self.asset_features)) != len(self.asset_features):
            raise ValueError(f"obs_layout asset_features has duplicates: {self.asset_features}")

    @classmethod
    def coerce(cls, layout: ObsLayout | Mapping[str, Any]) -> ObsLayout:
        if isinstance(layout, ObsLayout):
            return layout
        if not isinstance(layout, Mapping):
            raise TypeError(
                f"obs_layout must be a mapping or ObsLayout, got {type(layout).__name__}"
            )
        missing = {"n_assets", "asset_features"} - set(layout)
        if missing:
            raise ValueError(f"obs_layout is missing keys {sorted(missing)}")
        return cls(
            n_assets=int(layout["n_assets"]),
            asset_features=tuple(str(f) for f in layout["asset_features"]),
            global_features=tuple(str(f) for f in layout.get("global_features", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_assets": int(self.n_assets),
            "asset_features": list(self.asset_features),
            "global_features": list(self.global_features),
        }

    @property
    def n_asset_features(self) -> int:
        return len(self.asset_features)

    @property
    def n_global_features(self) -> int:
        return len(self.global_features)

    @property
    def frame_dim(self) -> int:
        return self.n_assets * self.n_asset_features + self.n_global_features

    @property
    def mask_column(self) -> int | None:
        """Column of ``mask`` in the per-asset block, or None when every asset is always live."""
        return self.asset_features.index("mask") if "mask" in self.asset_features else None

    def mask_indices(self) -> np.ndarray:
        """Flat indices of the mask feature within one frame (kept raw by observation normalisation)."""
        col = self.mask_column
        if col is None:
            return np.zeros(0, dtype=np.int64)
        return np.arange(self.n_assets, dtype=np.int64) * self.n_asset_features + col


def _flat_dim(observation_space: spaces.Space) -> int:
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise TypeError(f"extractors need a flat Box observation space, got {observation_space!r}")
    return int(observation_space.shape[0])


def _check_stack(obs_dim: int, n_stack: int, layout: ObsLayout | None) -> int:
    """Validate the window and return the dimension of one frame."""
    if not isinstance(n_stack, int | np.integer) or n_stack < 1:
        raise ValueError(f"n_stack must be a positive int, got {n_stack!r}")
    if obs_dim % n_stack:
        raise ValueError(f"observation dim {obs_dim} is not a multiple of n_stack={n_stack}")
    frame_dim = obs_dim // n_stack
    if layout is not None and layout.frame_dim != frame_dim:
        raise ValueError(
            f"obs_layout describes {layout.frame_dim} values per frame "
            f"({layout.n_assets} assets x {layout.n_asset_features} + "
            f"{layout.n_global_features} global) but the observation has {frame_dim} "
            f"per frame (dim {obs_dim}, n_stack={n_stack})"
        )
    return frame_dim


def split_window(
    obs: torch.Tensor, layout: ObsLayout, n_stack: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split flat stacked observations into per-asset, global and liveness tensors.

    Returns ``per_asset`` (B, T, A, F) with masked rows zeroed, ``global_`` (B, T, G) and
    ``live`` (B, T, A) bool. Zero-padded frames (start of an episode under ``VecFrameStack``)
    have mask 0, so they count as masked.
    """
    batch = obs.shape[0]
    frames = obs.reshape(batch, n_stack, layout.frame_dim)
    n_asset_values = layout.n_assets * layout.n_asset_features
    per_asset = frames[..., :n_asset_values].reshape(
        batch, n_stack, layout.n_assets, layout.n_asset_features
    )
    global_ = frames[..., n_asset_values:]
    col = layout.mask_column
    if col is None:
        live = torch.ones(per_asset.shape[:-1], dtype=torch.bool, device=obs.device)
    else:
        live = per_asset[..., col] > 0.5
    per_asset = per_asset * live.unsqueeze(-1).to(per_asset.dtype)
    return per_asset, global_, live


def _mlp(sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), activation()]
    return nn.Sequential(*layers)


class MLPExtractor(BaseFeaturesExtractor):
    """Flatten the (stacked) observation, zero masked assets, then a small MLP.

    Parameters
    ----------
    hidden_sizes : widths of the hidden layers; the last is ``features_dim`` (empty: identity).
    obs_layout : optional portfolio layout; when given, masked assets are zeroed.
    n_stack : number of stacked frames in the observation.
    activation : "tanh", "relu", "elu" or "gelu".
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        hidden_sizes: Sequence[int] = (64,),
        obs_layout: ObsLayout | Mapping[str, Any] | None = None,
        n_stack: int = 1,
        activation: str = "tanh",
    ) -> None:
        obs_dim = _flat_dim(observation_space)
        layout = None if obs_layout is None else ObsLayout.coerce(obs_layout)
        _check_stack(obs_dim, n_stack, layout)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        sizes = [obs_dim, *[int(h) for h in hidden_sizes]]
        super().__init__(observation_space, features_dim=sizes[-1])
        self.layout, self.n_stack = layout, int(n_stack)
        self.net = _mlp(sizes, _ACTIVATIONS[activation])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations
        if self.layout is not None:
            per_asset, global_, _ = split_window(x, self.layout, self.n_stack)
            x = torch.cat([per_asset.flatten(2), global_], dim=-1).flatten(1)
        return self.net(x)


class LSTMExtractor(BaseFeaturesExtractor):
    """An LSTM over the stacked window of frames (oldest first); features = last hidden state.

    Gives a feed-forward SB3 policy memory over ``n_stack`` steps without recurrent state.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        n_stack: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        obs_layout: ObsLayout | Mapping[str, Any] | None = None,
    ) -> None:
        obs_dim = _flat_dim(observation_space)
        layout = None if obs_layout is None else ObsLayout.coerce(obs_layout)
        frame_dim = _check_stack(obs_dim, n_stack, layout)
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}"
            )
        super().__init__(observation_space, features_dim=int(hidden_size))
        self.layout, self.n_stack, self.frame_dim = layout, int(n_stack), frame_dim
        self.lstm = nn.LSTM(
            frame_dim, int(hidden_size), num_layers=int(num_layers), batch_first=True
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        batch = observations.shape[0]
        if self.layout is not None:
            per_asset, global_, _ = split_window(observations, self.layout, self.n_stack)
            frames = torch.cat([per_asset.flatten(2), global_], dim=-1)
        else:
            frames = observations.reshape(batch, self.n_stack, self.frame_dim)
        _, (h_n, _) = self.lstm(frames)
        return h_n[-1]


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer that also returns its attention weights."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model))

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm_attn(x)
        out, weights = self.attn(
            h, h, h, key_padding_mask=padding, need_weights=True, average_attn_weights=False
        )
        x = x + out
        return x + self.ff(self.norm_ff(x)), weights


class AttentionExtractor(BaseFeaturesExtractor):
    """A small Transformer encoder across assets (the report's "Momentum Transformer", §3.1.1).

    Tokens are assets (each embedding its whole window of features) or, with
    ``tokens="asset_time"``, one token per asset and stacked frame. A leading *portfolio token*
    carries the global features and is never masked, so every query has a valid key even when
    all assets are masked (no NaN). Masked assets are excluded as keys (key padding mask).

    Features: the portfolio token's output followed by each asset's output at the latest frame
    (masked assets zeroed), so ``features_dim = d_model * (1 + n_assets)`` and the policy head
    keeps per-asset information for per-asset actions.

    After each forward, ``last_attention`` holds the weights as a detached CPU tensor of shape
    (batch, n_layers, n_heads, n_tokens, n_tokens); token 0 is the portfolio token, then assets
    (time-major for ``asset_time``: all assets at the oldest frame first).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        obs_layout: ObsLayout | Mapping[str, Any],
        n_stack: int = 1,
        d_model: int = 32,
        n_heads: int = 2,
        n_layers: int = 1,
        ff_dim: int | None = None,
        tokens: str = "asset",
        asset_embedding: bool = True,
    ) -> None:
        if obs_layout is None:
            raise ValueError(
                "AttentionExtractor needs obs_layout (the env's unwrapped.obs_layout) to find assets"
            )
        layout = ObsLayout.coerce(obs_layout)
        obs_dim = _flat_dim(observation_space)
        _check_stack(obs_dim, n_stack, layout)
        if tokens not in ("asset", "asset_time"):
            raise ValueError(f"tokens must be 'asset' or 'asset_time', got {tokens!r}")
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a positive multiple of n_heads={n_heads}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        super().__init__(observation_space, features_dim=d_model * (1 + layout.n_assets))
        self.layout, self.n_stack, self.tokens, self.d_model = layout, int(n_stack), tokens, d_model
        n_feat, n_glob, window = layout.n_asset_features, layout.n_global_features, int(n_stack)

        token_in = n_feat * window if tokens == "asset" else n_feat
        self.embed_asset = nn.Linear(token_in, d_model)
        self.asset_position = nn.Embedding(layout.n_assets, d_model) if asset_embedding else None
        self.time_position = nn.Embedding(window, d_model) if tokens == "asset_time" else None
        self.embed_global = nn.Linear(n_glob * window, d_model) if n_glob else None
        self.portfolio_token = nn.Parameter(torch.zeros(d_model))
        self.layers = nn.ModuleList(
            _EncoderLayer(d_model, n_heads, ff_dim or 2 * d_model) for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(d_model)
        self.last_attention: torch.Tensor | None = None

    def _tokens(
        self, per_asset: torch.Tensor, live: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, window, n_assets, n_feat = per_asset.shape
        assets = torch.arange(n_assets, device=per_asset.device)
        if self.tokens == "asset":
            x = self.embed_asset(
                per_asset.permute(0, 2, 1, 3).reshape(batch, n_assets, window * n_feat)
            )
            if self.asset_position is not None:
                x = x + self.asset_position(assets)
            return x, live[:, -1]
        x = self.embed_asset(per_asset)  # (B, T, A, d)
        x = x + self.time_position(torch.arange(window, device=per_asset.device))[:, None, :]
        if self.asset_position is not None:
            x = x + self.asset_position(assets)
        return x.reshape(batch, window * n_assets, self.d_model), live.reshape(
            batch, window * n_assets
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        per_asset, global_, live = split_window(observations, self.layout, self.n_stack)
        batch = observations.shape[0]
        asset_tokens, token_live = self._tokens(per_asset, live)
        portfolio = self.portfolio_token.expand(batch, 1, self.d_model)
        if self.embed_global is not None:
            portfolio = portfolio + self.embed_global(global_.flatten(1)).unsqueeze(1)
        x = torch.cat([portfolio, asset_tokens], dim=1)
        always = torch.ones(batch, 1, dtype=torch.bool, device=x.device)
        padding = ~torch.cat([always, token_live], dim=1)  # True = not a key
        weights = []
        for layer in self.layers:
            x, w = layer(x, padding)
            weights.append(w)
        self.last_attention = torch.stack(weights, dim=1).detach().cpu()
        x = self.norm_out(x)
        n_assets = self.layout.n_assets
        latest = x[:, -n_assets:] * live[:, -1].unsqueeze(-1).to(x.dtype)
        return torch.cat([x[:, 0], latest.flatten(1)], dim=1)


def _attention_extractor(policy: nn.Module) -> AttentionExtractor:
    """The actor's attention extractor (shared or not) of an SB3 policy."""
    candidates = [
        getattr(policy, "pi_features_extractor", None),
        getattr(getattr(policy, "actor", None), "features_extractor", None),
        getattr(policy, "features_extractor", None),
    ]
    for extractor in candidates:
        if isinstance(extractor, AttentionExtractor):
            return extractor
    raise TypeError(
        "the model's policy has no AttentionExtractor (train with extractor='attention')"
    )


def export_attention(model: Any, obs: np.ndarray) -> np.ndarray:
    """Attention weights of the policy's attention extractor on ``obs``.

    ``model`` is an SB3 model (``obs`` must then be what the policy sees: normalised and
    stacked) or a :class:`trendgym.agents.loading.TrainedAgent` (``obs`` are raw env
    observations, normalised here; with ``n_stack > 1`` pass already-stacked raw frames).
    Returns float32 (batch, n_layers, n_heads, n_tokens, n_tokens); token 0 is the portfolio
    token and each row sums to 1 over the unmasked keys.
    """
    prepare = getattr(model, "policy_input", None)
    obs_arr = prepare(obs) if prepare is not None else np.asarray(obs, dtype=np.float32)
    sb3_model = getattr(model, "model", model)
    extractor = _attention_extractor(sb3_model.policy)
    obs_t = torch.as_tensor(obs_arr, dtype=torch.float32, device=sb3_model.device)
    obs_t = obs_t.reshape(-1, extractor._observation_space.shape[0])
    was_training = extractor.training
    extractor.eval()
    with torch.no_grad():
        extractor(obs_t)
    extractor.train(was_training)
    assert extractor.last_attention is not None
    return extractor.last_attention.numpy().astype(np.float32)
