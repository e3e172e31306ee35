"""``NativeVectorEnv``: what every native vector env shares, whatever its kernel steps.

A native vector env keeps its sub-envs as rows of arrays and steps them all in one numba call.
Around that call each one needs the same Python plumbing, written once here:

- construction: `num_envs` checked, the single env built once as the `template` (it validates
  the keywords and holds the shared data), batched spaces, Gymnasium ``metadata`` with the
  autoreset mode, a ``KernelChoice`` between the ``prange`` and one-thread kernels;
- seeding as ``SyncVectorEnv`` does it (``per_env_seeds``) with one generator per env, and
  ``reset_mask`` validation (``reset_mask_of``, ``seed_envs``);
- ``get_attr`` / ``set_attr`` / ``call`` (per-env values from the subclass's `per_env_attrs`,
  shared settings from the vector env or its template) and the refusal to render.

A subclass builds its arrays after ``super().__init__``, and writes ``reset`` and ``step``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from trendgym.envs.vector.threads import KernelChoice


def per_env_seeds(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """Each env's reset seed, as ``SyncVectorEnv`` hands them out: None for all, ``seed + i``
    for an int, or one entry per env from a list."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"seed list must have {num_envs} entries, got {len(seeds)}")
    return seeds


def autoreset_mode_of(mode: Any) -> AutoresetMode:
    """An ``AutoresetMode`` from the enum, its value ("NextStep") or its name ("next_step")."""
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        for m in AutoresetMode:
            if mode in (m.value, m.name, m.name.lower()):
                return m
    raise ValueError(
        f"autoreset_mode must be one of {[m.name.lower() for m in AutoresetMode]}, got {mode!r}"
    )


class NativeVectorEnv(VectorEnv):
    """Base of the vector envs whose sub-envs are rows of arrays stepped by one numba call.

    Subclasses set the class attributes and call ``super().__init__`` first:

    - `single_env`: the single env class; ``single_env(**env_kwargs)`` becomes `template`.
    - `parallel_min_envs`: from this many envs the automatic kernel choice may use ``prange``.
    - `compliance_refusal`: why ``compliance=`` is refused (the wrapper hooks single envs).
    - `settable_attrs`: shared settings ``set_attr`` may change (one value for every env);
      `own_attrs`: further names ``get_attr`` reads from the vector env, not its template.
    - ``per_env_attrs()``: name -> function of the env index, for per-env ``get_attr`` values.

    After ``__init__``: `template`, `num_envs`, `metadata` (``autoreset_mode`` in it), the single
    and batched spaces, `parallel`, `kernel_steps` and ``self._threads`` (the ``KernelChoice``),
    ``self._generators`` (one per env, made on its first reset).
    """

    single_env: ClassVar[type]
    parallel_min_envs: ClassVar[int] = 32
    compliance_refusal: ClassVar[str] = (
        "compliance= wraps single envs: use gymnasium.make_vec(..., "
        "vectorization_mode='sync') for a compliance-wrapped vector env"
    )
    settable_attrs: ClassVar[tuple[str, ...]] = ()
    own_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_envs: int,
        env_kwargs: dict[str, Any],
        *,
        autoreset_mode: Any = AutoresetMode.NEXT_STEP,
        parallel: bool | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be an int, got {type(num_envs).__name__}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        mode = autoreset_mode_of(autoreset_mode)
        if env_kwargs.pop("compliance", None) is not None:
            raise ValueError(self.compliance_refusal)
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("the native vector env does not render: use render_mode=None")
        self.template = self.single_env(**env_kwargs)  # validates the kwargs
        self.num_envs = n = int(num_envs)
        self.metadata = {"render_modes": [], "autoreset_mode": mode}
        self.render_mode = None
        self.parallel = parallel
        self._threads = KernelChoice(parallel, n, self.parallel_min_envs)
        self.kernel_steps = self._threads.steps
        self.single_observation_space = self.template.observation_space
        self.single_action_space = self.template.action_space
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._generators: list[np.random.Generator | None] = [None] * n

    # ---------------------------------------------------------------- resets
    def reset_mask_of(self, options: dict[str, Any] | None) -> np.ndarray:
        """The envs a ``reset`` resets: ``options["reset_mask"]`` (checked) or all of them."""
        if not options or "reset_mask" not in options:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(options["reset_mask"])
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask!r}"
            )
        if not mask.any():
            raise ValueError("reset_mask resets no env")
        return mask

    def seed_envs(self, seed: int | Sequence[int | None] | None, mask: np.ndarray) -> list[bool]:
        """Seed the generators of the envs in `mask` as ``gym.Env.reset`` would: a seed makes a
        new generator, no seed keeps the env's own (made once if it has none). Returns, per env,
        whether its generator is new (its pre-drawn next episode must be drawn again)."""
        seeds = per_env_seeds(seed, self.num_envs)
        fresh = [False] * self.num_envs
        for i in np.flatnonzero(mask):
            if seeds[i] is not None or self._generators[i] is None:
                self._generators[i], _ = seeding.np_random(seeds[i])
                fresh[i] = True
        return fresh

    # ---------------------------------------------------------------- per-env access
    def per_env_attrs(self) -> dict[str, Callable[[int], Any]]:
        """Per-env ``get_attr`` values: name -> function of the env index."""
        return {"np_random": lambda i: self._generators[i]}

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """One value per env: its own state (``per_env_attrs``) or a shared setting."""
        per_env = self.per_env_attrs().get(name)
        if per_env is not None:
            return tuple(per_env(i) for i in range(self.num_envs))
        if name in self.settable_attrs or name in self.own_attrs:
            value = getattr(self, name)
        else:
            value = getattr(self.template, name)  # AttributeError names it
        return (value,) * self.num_envs

    def set_attr(self, name: str, values: Any) -> None:
        """Set a shared setting (one of `settable_attrs`) for every env at once."""
        if name not in self.settable_attrs:
            fixed = f"only the shared settings {self.settable_attrs} can be set"
            if not self.settable_attrs:
                fixed = f"{type(self).__name__}'s settings are fixed at construction"
            raise ValueError(f"cannot set {name!r}: {fixed}")
        if isinstance(values, (list, tuple)):
            if len(values) != self.num_envs or any(v != values[0] for v in values):
                raise ValueError(f"{name} is shared by all envs: give one value, got {values!r}")
            values = values[0]
        setattr(self.template, name, values)  # keep the template in step for get_attr
        setattr(self, name, values)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """One result per env, as ``SyncVectorEnv.call``: `render` (None) or an attribute's
        value per env; methods are not per-env here (the sub-envs are rows of arrays)."""
        if name == "render":
            return (None,) * self.num_envs
        values = self.get_attr(name)
        if callable(values[0]):
            raise ValueError(
                f"{name!r} cannot be called per env on {type(self).__name__}: its sub-envs are "
                "rows of arrays (use step/reset on the vector env)"
            )
        return values

    def render(self) -> None:
        """Native vector envs do not render (``metadata["render_modes"]`` is empty)."""
        return None
