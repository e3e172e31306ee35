"""Choosing, step by step, between a vector env's prange kernel and its one-thread kernel.

A ``prange`` step waits for its slowest thread: when another job holds a core, one thread is
faster, and on an idle machine both cores are. ``KernelChoice`` times the kernel in use, and
now and then the other one (after ``PROBE_EVERY`` steps, doubling up to ``PROBE_EVERY_MAX``
while the probes keep losing), and picks the faster lately. Results never depend on the choice.
"""

from __future__ import annotations

PROBE_EVERY = 50
PROBE_EVERY_MAX = 1600
TIMING_ALPHA = 0.25  # weight of the newest step time in each kernel's moving average


class KernelChoice:
    """`parallel`: True (always prange), False (always one thread) or None (auto, from
    `min_envs` envs; below that one thread). `steps` counts the steps each kernel made."""

    def __init__(self, parallel: bool | None, num_envs: int, min_envs: int) -> None:
        if parallel is not None and not isinstance(parallel, bool):
            raise TypeError(f"parallel must be True, False or None, got {parallel!r}")
        self.auto = parallel is None and num_envs >= min_envs
        self.fixed = bool(parallel)  # the kernel when not auto
        self.steps = {"prange": 0, "serial": 0}
        self._timing = {True: [0.0, 0], False: [0.0, 0]}  # moving average (s/work), steps timed
        self._probe_every = self._next_probe = PROBE_EVERY
        self._probing = False

    def use_prange(self) -> bool:
        """The kernel for the next step: the faster lately, or the other one when probing."""
        if not self.auto:
            return self.fixed
        par, ser = self._timing[True], self._timing[False]
        if par[1] < 2 or ser[1] < 2:  # time each kernel twice (the first call may load it)
            return par[1] <= ser[1]
        faster = par[0] <= ser[0]
        self._probing = self.steps["prange"] + self.steps["serial"] >= self._next_probe
        return (not faster) if self._probing else faster

    def record(self, use_prange: bool, seconds: float, work: float = 1.0) -> None:
        """Count a step of that kernel and, in auto mode, its wall time per unit of `work`
        (steps whose cost varies, e.g. with the envs that reset, compare fairly)."""
        self.steps["prange" if use_prange else "serial"] += 1
        if not self.auto:
            return
        seconds /= work
        avg = self._timing[use_prange]
        avg[1] += 1
        if avg[1] == 2:  # the first call is not a step time (cache load, thread start)
            avg[0] = seconds
        elif avg[1] > 2:
            avg[0] += TIMING_ALPHA * (seconds - avg[0])
        if self._probing:
            self._probing = False
            lost = seconds > self._timing[not use_prange][0]
            self._probe_every = min(2 * self._probe_every, PROBE_EVERY_MAX) if lost else PROBE_EVERY
            self._next_probe = self.steps["prange"] + self.steps["serial"] + self._probe_every
