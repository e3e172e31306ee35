"""rgb_array frames of both envs, and SB3's `make_vec_env`, which asks every env for them."""

import gymnasium as gym
import numpy as np
import pytest

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs import rendering
from trendgym.envs.execution import ExecutionEnv, encode_action
from trendgym.envs.execution.vector import ExecutionVectorEnv
from trendgym.envs.portfolio import PortfolioEnv
from trendgym.envs.vector import PortfolioVectorEnv

EXEC = dict(horizon=8, warmup_seconds=10.0, side="buy", preset="calm")
PORT = dict(n_assets=6, n_years=3.0)
WAIT, AT_TOUCH = 0, 3


def _is(img: np.ndarray, color) -> np.ndarray:
    return (img == np.array(color, dtype=np.uint8)).all(axis=-1)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("trendgym/Execution-v0", EXEC), ("trendgym/Portfolio-v0", PORT)],
)
def test_sb3_make_vec_env_builds_trains_and_records_frames(env_id, kwargs):
    """SB3's make_vec_env passes render_mode="rgb_array" to gym.make, and falls back only on
    a TypeError: envs that refused the mode could not be built the standard SB3 way."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=kwargs)
    PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0).learn(32)
    frames = venv.get_images()
    assert len(frames) == 2
    for frame in frames:
        assert frame.shape == (rendering.HEIGHT, rendering.WIDTH, 3) and frame.dtype == np.uint8


@pytest.mark.parametrize(
    "make",
    [
        lambda mode: ExecutionEnv(render_mode=mode, **EXEC),
        lambda mode: PortfolioEnv(render_mode=mode, **PORT),
    ],
)
def test_rendering_never_changes_a_trajectory(make):
    def run(mode):
        env = make(mode)
        obs, _ = env.reset(seed=5)
        env.action_space.seed(5)
        out, done = [obs], False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            out += [obs, np.float64(reward)]
            if mode is not None:
                assert env.render().shape == (rendering.HEIGHT, rendering.WIDTH, 3)
            done = terminated or truncated
        return out

    plain, drawn = run(None), run("rgb_array")
    assert len(plain) == len(drawn)
    assert all(np.array_equal(a, b) for a, b in zip(plain, drawn, strict=True))


def test_execution_frame_shows_progress_depth_and_the_resting_child():
    env = ExecutionEnv(render_mode="rgb_array", **EXEC)
    assert env.render() is None  # before the first reset
    env.reset(seed=1)
    frame = env.render()
    half = rendering.WIDTH // 2
    depth = frame[24:]
    assert _is(depth[:, :half], rendering.GREEN).any()  # bids left of the mid
    assert _is(depth[:, half:], rendering.RED).any()  # asks right of it
    assert not _is(depth[:, half:], rendering.GREEN).any()
    assert not _is(frame, rendering.BLUE).any()  # nothing done, nothing resting

    env.step(encode_action(AT_TOUCH, 0.5))
    frame = env.render()
    assert env.book.order(env.own_id) is not None  # the child rests at the bid
    assert _is(frame[24:, :half], rendering.BLUE).any()
    used = int(_is(frame[2], rendering.DARK).sum())
    assert used == round(env.t / env.horizon * rendering.WIDTH)
    done = int(_is(frame[12], rendering.BLUE).sum())
    assert done == round((1 - env.remaining / env.quantity) * rendering.WIDTH)


def test_portfolio_frame_shows_the_weights_and_the_nav_path():
    env = PortfolioEnv(render_mode="rgb_array", **PORT)
    assert env.render() is None
    env.reset(seed=0)
    weights = np.array([0.3, -0.2, 0.0, 0.1, -0.1, 0.2], dtype=np.float32)
    for _ in range(20):
        env.step(weights)
    frame = env.render()
    n, mid = weights.size, (110 + rendering.HEIGHT) // 2
    for j, w in enumerate(env.weights):
        col = frame[:, (2 * j + 1) * rendering.WIDTH // (2 * n)]
        assert _is(col[110:mid], rendering.GREEN).any() == (w > 0)
        assert _is(col[mid + 1 :], rendering.RED).any() == (w < 0)
    # the NAV line is drawn in every column of its band, and joined (no gaps between columns)
    line = _is(frame[:100], rendering.DARK)
    assert line.any(axis=0).all()


def test_bad_render_modes_are_refused_and_the_native_vector_envs_do_not_render():
    with pytest.raises(ValueError, match="'ansi' or 'rgb_array'"):
        ExecutionEnv(render_mode="human")
    with pytest.raises(ValueError, match="None or 'rgb_array'"):
        PortfolioEnv(render_mode="ansi", **PORT)
    with pytest.raises(ValueError, match="does not render"):
        ExecutionVectorEnv(2, render_mode="rgb_array")
    with pytest.raises(ValueError, match="does not render"):
        PortfolioVectorEnv(2, render_mode="rgb_array", **PORT)


def test_gym_make_with_rgb_array_passes_gymnasiums_render_check():
    from gymnasium.utils.env_checker import check_env

    for env_id, kwargs in (("trendgym/Execution-v0", EXEC), ("trendgym/Portfolio-v0", PORT)):
        env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        check_env(env.unwrapped, skip_render_check=False)


def test_line_and_columns_helpers():
    img = rendering.canvas(20, 10)
    rendering.line(img, 0, 20, np.array([0.0, 1.0]), rendering.DARK)
    drawn = _is(img, rendering.DARK)
    assert drawn[19, 0] and drawn[0, -1]  # from the bottom-left to the top-right
    assert drawn.any(axis=0).all()
    img = rendering.canvas(10, 10)
    rendering.columns(img, 0, 10, np.array([0.5, 2.0]), [rendering.RED, rendering.GREEN])
    assert _is(img[:, :4], rendering.RED).sum(axis=0).max() == 5  # half the band
    assert _is(img[:, 5:9], rendering.GREEN).all()  # clipped at the band's top
