"""trendgym.agents SB3 factories and extractors (tiny budgets, SB3-style)."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.vec_env import DummyVecEnv

from trendgym.agents import (
    AttentionExtractor,
    LSTMExtractor,
    MaskAwareVecNormalize,
    MLPExtractor,
    ObsLayout,
    default_hyperparameters,
    export_attention,
    make_model,
)

torch.set_num_threads(1)

TINY = dict(policy_kwargs=dict(net_arch=[8]))
LAYOUT = {
    "n_assets": 4,
    "asset_features": ["ret_20", "vol", "mask"],
    "global_features": ["regime", "t"],
}
TINY_ID = "TinyPortfolio-v0"


class TinyPortfolioEnv(gym.Env):
    """Test-only env emitting the portfolio observation layout (4 assets, one listed late).

    Per-asset features (ret_20, vol, mask); asset 3 is masked (row zero) for the first
    ``listing_step`` steps of an episode. Reward: the weights times a noisy trend per asset.
    """

    metadata = {"render_modes": []}

    def __init__(self, n_assets: int = 4, horizon: int = 20, listing_step: int = 5) -> None:
        self.n_assets, self.horizon, self.listing_step = n_assets, horizon, listing_step
        self.obs_layout = {**LAYOUT, "n_assets": n_assets}
        dim = n_assets * 3 + 2
        self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (n_assets,), np.float32)
        self._t = 0
        self._trend = np.zeros(n_assets)

    def _obs(self) -> np.ndarray:
        per_asset = np.zeros((self.n_assets, 3), dtype=np.float32)
        per_asset[:, 0] = self._trend + self.np_random.normal(0, 0.1, self.n_assets)
        per_asset[:, 1] = 0.2 + 0.05 * self.np_random.random(self.n_assets)
        per_asset[:, 2] = 1.0
        if self._t < self.listing_step:
            per_asset[-1] = 0.0  # not yet listed: masked row, all zero
        glob = np.array([self._trend.mean(), self._t / self.horizon], dtype=np.float32)
        return np.concatenate([per_asset.reshape(-1), glob]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._trend = self.np_random.choice([-1.0, 1.0], self.n_assets)
        return self._obs(), {}

    def step(self, action):
        weights = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
        live = np.ones(self.n_assets)
        if self._t < self.listing_step:
            live[-1] = 0.0
        reward = float(
            np.sum(
                weights
                * live
                * (0.01 * self._trend + self.np_random.normal(0, 0.01, self.n_assets))
            )
        )
        self._t += 1
        return self._obs(), reward, False, self._t >= self.horizon, {}


def register_tiny() -> None:
    if TINY_ID not in gym.registry:
        gym.register(id=TINY_ID, entry_point=TinyPortfolioEnv)


register_tiny()


def random_obs(
    rng: np.random.Generator, batch: int, n_stack: int, live: np.ndarray | None = None
) -> torch.Tensor:
    """Stacked portfolio observations; ``live`` (batch, n_assets) sets the mask (all frames)."""
    layout = ObsLayout.coerce(LAYOUT)
    frames = rng.normal(size=(batch, n_stack, layout.frame_dim)).astype(np.float32)
    per_asset = frames[..., : 4 * 3].reshape(batch, n_stack, 4, 3)
    if live is None:
        live = rng.random((batch, 4)) < 0.6
    per_asset[..., 2] = live[:, None, :].astype(np.float32)
    frames[..., : 4 * 3] = per_asset.reshape(batch, n_stack, 12)
    return torch.as_tensor(frames.reshape(batch, -1))


def box(n_stack: int) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (ObsLayout.coerce(LAYOUT).frame_dim * n_stack,), np.float32)


def make_extractor(kind: str, n_stack: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":
        return MLPExtractor(box(n_stack), hidden_sizes=(16,), obs_layout=LAYOUT, n_stack=n_stack)
    if kind == "lstm":
        return LSTMExtractor(box(n_stack), n_stack=n_stack, hidden_size=8, obs_layout=LAYOUT)
    tokens = "asset_time" if kind == "attention_time" else "asset"
    return AttentionExtractor(
        box(n_stack), LAYOUT, n_stack=n_stack, d_model=8, n_heads=2, n_layers=2, tokens=tokens
    )


EXTRACTOR_KINDS = ["mlp", "lstm", "attention", "attention_time"]


def test_import_trendgym_stays_light():
    code = (
        "import sys, trendgym, trendgym.agents\n"
        "names = dir(trendgym.agents)\n"
        "assert 'make_model' in names and 'load' in names, names\n"
        "heavy = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", EXTRACTOR_KINDS)
@pytest.mark.parametrize("n_stack", [1, 3])
def test_extractor_finite_with_masked_and_all_masked_assets(kind, n_stack):
    extractor = make_extractor(kind, n_stack)
    rng = np.random.default_rng(1)
    live = rng.random((6, 4)) < 0.5
    live[0] = False  # every asset masked
    live[1] = True
    obs = random_obs(rng, 6, n_stack, live)
    out = extractor(obs)
    assert out.shape == (6, extractor.features_dim)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    grads = [p.grad for p in extractor.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(EXTRACTOR_KINDS),
    live=st.lists(st.booleans(), min_size=4, max_size=4),
    shift=st.floats(-50, 50, allow_nan=False),
)
def test_masked_assets_do_not_change_features(kind, live, shift):
    """What VecNormalize does to a masked row (any values) must not reach the policy."""
    extractor = make_extractor(kind, 2)
    obs = random_obs(np.random.default_rng(2), 3, 2, np.tile(np.array(live), (3, 1)))
    moved = obs.clone().reshape(3, 2, -1)
    for a in np.flatnonzero(~np.array(live)):
        moved[:, :, a * 3 : a * 3 + 2] += shift  # features of a masked asset, not its mask
    with torch.no_grad():
        np.testing.assert_allclose(
            extractor(obs).numpy(), extractor(moved.reshape(3, -1)).numpy(), atol=1e-5
        )


@pytest.mark.parametrize("tokens,n_stack", [("asset", 1), ("asset", 3), ("asset_time", 3)])
def test_attention_weights_shape_and_rows_sum_to_one_over_live_keys(tokens, n_stack):
    extractor = AttentionExtractor(
        box(n_stack), LAYOUT, n_stack=n_stack, d_model=8, n_heads=2, n_layers=2, tokens=tokens
    )
    rng = np.random.default_rng(3)
    live = rng.random((5, 4)) < 0.5
    live[0] = False
    with torch.no_grad():
        extractor(random_obs(rng, 5, n_stack, live))
    weights = extractor.last_attention.numpy()
    n_tokens = 1 + 4 * (n_stack if tokens == "asset_time" else 1)
    assert weights.shape == (5, 2, 2, n_tokens, n_tokens)
    key_live = np.tile(live, (1, n_tokens // 4 if tokens == "asset_time" else 1))
    key_live = np.concatenate([np.ones((5, 1), bool), key_live], axis=1)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    masked_keys = np.broadcast_to(~key_live[:, None, None, None, :], weights.shape)
    assert np.all(weights[masked_keys] == 0.0)
    all_masked = weights[0]
    np.testing.assert_allclose(all_masked[..., 0], 1.0, atol=1e-6)  # only the portfolio token left


def test_attention_outputs_zero_for_masked_assets():
    extractor = make_extractor("attention", 1)
    live = np.array([[True, False, True, False]])
    with torch.no_grad():
        out = extractor(random_obs(np.random.default_rng(4), 1, 1, live)).reshape(5, 8)
    assert torch.all(out[2] == 0) and torch.all(out[4] == 0)
    assert torch.any(out[1] != 0) and torch.any(out[3] != 0)


def test_extractors_refuse_bad_layouts():
    with pytest.raises(ValueError, match="per frame"):
        MLPExtractor(spaces.Box(-1, 1, (7,), np.float32), obs_layout=LAYOUT)
    with pytest.raises(ValueError, match="n_stack"):
        LSTMExtractor(box(1), n_stack=4)
    with pytest.raises(ValueError, match="n_assets"):
        ObsLayout.coerce({"n_assets": 0, "asset_features": ["mask"]})
    with pytest.raises(ValueError, match="missing keys"):
        ObsLayout.coerce({"asset_features": ["mask"]})
    with pytest.raises(ValueError, match="multiple of n_heads"):
        AttentionExtractor(box(1), LAYOUT, d_model=7, n_heads=2)
    with pytest.raises(ValueError, match="tokens"):
        AttentionExtractor(box(1), LAYOUT, tokens="time")
    with pytest.raises(TypeError, match="flat Box"):
        MLPExtractor(spaces.Discrete(3))


def test_mask_aware_normalisation_keeps_masks_raw():
    venv = MaskAwareVecNormalize(
        DummyVecEnv([lambda: TinyPortfolioEnv()]),
        raw_indices=ObsLayout.coerce(LAYOUT).mask_indices(),
    )
    venv.seed(0)
    obs = venv.reset()
    for _ in range(8):
        obs, *_ = venv.step(np.zeros((1, 4), np.float32))
    per_asset = obs[0, :12].reshape(4, 3)
    assert set(np.unique(per_asset[:, 2])) <= {0.0, 1.0}
    raw = venv.get_original_obs()[0, :12].reshape(4, 3)
    np.testing.assert_array_equal(per_asset[:, 2], raw[:, 2])
    assert not np.allclose(per_asset[:, 0], raw[:, 0])  # the other features are normalised


def test_defaults_per_env_id_and_overrides_merge():
    env = gym.make(TINY_ID)
    model = make_model(
        "ppo",
        env,
        seed=0,
        env_id="trendgym/Portfolio-v0",
        n_steps=32,
        batch_size=32,
        policy_kwargs=dict(net_arch=[8], activation_fn="relu"),
    )
    expected = default_hyperparameters("trendgym/Portfolio-v0", "ppo")
    assert model.gamma == expected["gamma"] and model.n_steps == 32
    assert isinstance(model.policy.features_extractor, AttentionExtractor)  # the id's default
    assert model.policy.features_extractor.layout == ObsLayout.coerce(LAYOUT)
    log_std = expected["policy_kwargs"]["log_std_init"]
    np.testing.assert_allclose(model.policy.log_std.detach().numpy(), log_std)  # kept from defaults
    assert isinstance(model.policy.mlp_extractor.policy_net[1], torch.nn.ReLU)
    generic = make_model("ppo", "Pendulum-v1", seed=0, **TINY)
    assert generic.policy.features_extractor.__class__.__name__ == "FlattenExtractor"
    assert default_hyperparameters("Unknown-v9", "sac") == default_hyperparameters(None, "sac")


def test_per_env_rollout_keeps_the_default_samples_per_update():
    from trendgym.agents.sb3 import per_env_rollout

    rollout = default_hyperparameters("trendgym/Execution-v0", "ppo")["n_steps"]
    got = per_env_rollout("trendgym/Execution-v0", "ppo", 8, {"learning_rate": 1e-3})
    assert got == {"learning_rate": 1e-3, "n_steps": rollout // 8}
    assert per_env_rollout("trendgym/Execution-v0", "ppo", 1, {}) == {}
    assert per_env_rollout("trendgym/Execution-v0", "ppo", 8, {"n_steps": 32}) == {"n_steps": 32}
    assert per_env_rollout("trendgym/Execution-v0", "sac", 8, {}) == {}  # off-policy: no rollout
    assert per_env_rollout("trendgym/Portfolio-v0", "a2c", 64, {})["n_steps"] == 1  # at least 1
    with pytest.raises(ValueError, match="n_envs must be a positive int, got 0"):
        per_env_rollout("trendgym/Execution-v0", "ppo", 0, {})


def test_make_model_refuses_bad_requests():
    with pytest.raises(ValueError, match="algo"):
        make_model("dqn", "Pendulum-v1")
    with pytest.raises(ValueError, match="Box action space"):
        make_model("sac", "CartPole-v1")
    with pytest.raises(ValueError, match="extractor"):
        make_model("ppo", "Pendulum-v1", extractor="cnn")
    with pytest.raises(ValueError, match="obs_layout"):
        make_model("ppo", "Pendulum-v1", extractor="attention")
    with pytest.raises(ValueError, match="activation_fn"):
        make_model("ppo", "Pendulum-v1", policy_kwargs=dict(activation_fn="swish"))


@pytest.mark.parametrize(
    "algo,env_id,extra",
    [
        ("ppo", "CartPole-v1", dict(n_steps=64, batch_size=32, extractor="lstm")),
        ("a2c", "CartPole-v1", dict(n_steps=8, extractor="mlp")),
        (
            "sac",
            TINY_ID,
            dict(learning_starts=32, batch_size=16, buffer_size=256, extractor="attention"),
        ),
    ],
)
def test_each_algo_learns_a_tiny_budget(algo, env_id, extra):
    model = make_model(algo, env_id, seed=0, **TINY, **extra)
    model.learn(128)
    assert model.num_timesteps >= 128
    for p in model.policy.parameters():
        assert torch.isfinite(p).all()


def test_same_seed_same_parameters():
    def fit() -> list[np.ndarray]:
        model = make_model("ppo", "Pendulum-v1", seed=3, n_steps=64, batch_size=32, **TINY)
        model.learn(128)
        return [p.detach().numpy().copy() for p in model.policy.parameters()]

    first, second = fit(), fit()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    other = make_model("ppo", "Pendulum-v1", seed=4, n_steps=64, batch_size=32, **TINY)
    other.learn(128)
    assert not all(
        np.array_equal(a, p.detach().numpy())
        for a, p in zip(first, other.policy.parameters(), strict=True)
    )


def test_export_attention_from_sb3_model():
    model = make_model(
        "ppo", TINY_ID, seed=0, n_steps=32, batch_size=32, extractor="attention", **TINY
    )
    obs = random_obs(np.random.default_rng(5), 3, 1).numpy()
    weights = export_attention(model, obs)
    assert weights.shape == (3, 1, 2, 5, 5) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(TypeError, match="AttentionExtractor"):
        export_attention(make_model("ppo", "Pendulum-v1", **TINY), np.zeros((1, 3), np.float32))
