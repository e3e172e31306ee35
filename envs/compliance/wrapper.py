"""`ComplianceWrapper`: pre-trade controls, a kill switch and an audit trail around both envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from trendgym.envs.compliance.adapter import ENGINES, engine_class
from trendgym.envs.compliance.audit import AuditLog
from trendgym.envs.compliance.rules import EXECUTION, MODES, PORTFOLIO, PRESETS, RULES, Rule

_NO_RECORDS: tuple = ()
# the step's info keys (besides one ``compliance_<rule>`` per active rule); see the class docs
INFO_KEYS = ("compliance", "compliance_violations", "compliance_penalty", "compliance_killed")


def resolve_rules(
    rules: Any, env_kind: str, mode: str | dict[str, str] | None = None
) -> list[Rule]:
    """The rule objects a ``rules=`` / ``compliance=`` spec means for `env_kind`.

    Accepts ``None``/``False`` (no rules), ``True`` or a preset name (``"default"``,
    ``"strict"``: every rule that applies to the env), a dict ``{rule_name: params | True |
    False}`` (exactly those rules; a ``"preset"`` key starts from that preset instead, and
    ``False`` removes a rule), a `Rule`, or a list of `Rule` objects or ``{"rule": name,
    **params}`` dicts. ``mode`` overrides the rules' modes: one mode for every rule that
    supports it, or ``{rule_name: mode}``.
    """
    if env_kind not in (EXECUTION, PORTFOLIO):
        raise ValueError(f"env_kind must be {EXECUTION!r} or {PORTFOLIO!r}, got {env_kind!r}")
    if rules is None or rules is False:
        built: list[Rule] = []
    elif rules is True or isinstance(rules, str):
        name = "default" if rules is True else rules
        if name not in PRESETS:
            raise ValueError(f"unknown compliance preset {name!r}; choose from {sorted(PRESETS)}")
        built = [RULES[k](**p) for k, p in PRESETS[name][env_kind].items()]
    elif isinstance(rules, dict):
        spec = dict(rules)
        for key in ("mode", "instrument"):
            spec.pop(key, None)
        preset = spec.pop("preset", None)
        chosen: dict[str, dict[str, Any]] = (
            dict(PRESETS[_preset(preset)][env_kind]) if preset else {}
        )
        for key, params in spec.items():
            if key not in RULES:
                raise ValueError(f"unknown compliance rule {key!r}; choose from {sorted(RULES)}")
            if params is False or params is None:
                chosen.pop(key, None)
            elif params is True:
                chosen[key] = {}
            elif isinstance(params, dict):
                chosen[key] = {**chosen.get(key, {}), **params}
            else:
                raise TypeError(
                    f"compliance rule {key!r} takes a dict of parameters, True or False, got {params!r}"
                )
        built = [RULES[k](**p) for k, p in chosen.items()]
    elif isinstance(rules, Rule):
        built = [rules]
    elif isinstance(rules, (list, tuple)):
        built = []
        for item in rules:
            if isinstance(item, Rule):
                built.append(item)
            elif isinstance(item, dict) and item.get("rule") in RULES:
                params = {k: v for k, v in item.items() if k != "rule"}
                built.append(RULES[item["rule"]](**params))
            else:
                raise TypeError(
                    f"a rules list holds Rule objects or {{'rule': name, ...}} dicts, got {item!r}"
                )
    else:
        raise TypeError(
            f"rules must be None, True, a preset name, a dict or a list of rules, got {type(rules).__name__}"
        )
    seen: set[type] = set()
    for rule in built:
        if type(rule) in seen:
            raise ValueError(f"rule {rule.name!r} is given twice")
        seen.add(type(rule))
        if env_kind not in rule.envs:
            raise ValueError(
                f"rule {rule.name!r} applies to {', '.join(rule.envs)} only, not to the {env_kind} env"
            )
    return _with_modes(built, mode)


def _preset(name: Any) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown compliance preset {name!r}; choose from {sorted(PRESETS)}")
    return name


def _with_modes(rules: list[Rule], mode: str | dict[str, str] | None) -> list[Rule]:
    from dataclasses import replace

    if mode is None:
        return rules
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return [replace(r, mode=mode) if mode in r.modes else r for r in rules]
    if isinstance(mode, dict):
        unknown = set(mode) - {r.name for r in rules}
        if unknown:
            raise ValueError(f"mode names rules that are not active: {sorted(unknown)}")
        return [replace(r, mode=mode[r.name]) if r.name in mode else r for r in rules]
    raise TypeError(f"mode must be None, a mode name or a dict, got {type(mode).__name__}")


class ComplianceWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Pre-trade compliance between an agent and Execution-v0 or Portfolio-v0.

    The env attaches the checks itself through the `Compliant` protocol
    (``trendgym.envs.compliance.adapter``): Execution-v0 runs them in its pre-trade hook, so
    they see every new order and modify (also the forced completion at the horizon and
    orders delayed by latency) before the book; Portfolio-v0 runs them inside its own step
    kernel, so they see the target weights before the env trades. The checks are numba
    kernels either way; Python only turns their records into audit entries when a rule
    intervened. Each rule blocks, clips or penalises (see `trendgym.envs.compliance.rules`);
    the kill switch cancels the agent's resting orders and blocks every later order of the
    episode.

    Every intervention is appended to ``self.audit`` (an `AuditLog`); ``self.step_records``
    holds the last ``step``'s (or ``reset``'s) as record dicts (an empty tuple when none). A
    penalised intervention subtracts the rule's ``penalty`` from that step's reward; blocks
    and clips cost nothing beyond their market effect.

    Every info, from ``reset`` on, has the same numeric keys (RL clients such as Tianshou
    store infos in arrays sized from the first one):

    - ``compliance``: interventions this step (0 on most steps);
    - ``compliance_violations``: the episode's running count (the terminal info's contract
      key);
    - ``compliance_penalty``: what the step's penalties took off its reward;
    - ``compliance_killed``: 1 once the kill switch has tripped this episode, else 0;
    - ``compliance_<rule>`` for each active rule (e.g. ``compliance_position_limit``): its
      interventions this step.

    Parameters
    ----------
    env : the env (wrapped or not) whose ``unwrapped`` implements `Compliant` (Execution-v0,
        Portfolio-v0).
    rules : a preset name (``"default"``, ``"strict"``), a dict or a list of rules; see
        `resolve_rules`.
    mode : one mode for every rule that supports it, or ``{rule_name: mode}``.
    instrument : the name of Execution-v0's single instrument for the restricted list.
    """

    def __init__(
        self,
        env: gym.Env,
        rules: Any = "default",
        mode: str | dict[str, str] | None = None,
        instrument: str = "EXEC",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, rules=rules, mode=mode, instrument=instrument
        )
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        kind = getattr(base, "compliance_kind", None)
        if kind not in ENGINES or not callable(getattr(base, "attach_compliance", None)):
            raise TypeError(
                f"ComplianceWrapper wraps Execution-v0 or Portfolio-v0, got {type(base).__name__}"
            )
        self.env_kind = kind
        if isinstance(rules, dict):
            mode = rules.get("mode", mode)
            instrument = rules.get("instrument", instrument)
        if not isinstance(instrument, str):
            raise TypeError(f"instrument must be a string, got {instrument!r}")
        self.rules = resolve_rules(rules, self.env_kind, mode)
        self.audit = AuditLog()
        self.episode = 0
        self.violations = 0
        self._t = 0
        self._penalty = 0.0
        self._records: list[dict[str, Any]] = []
        self.step_records: tuple[dict[str, Any], ...] | list[dict[str, Any]] = _NO_RECORDS
        self._killed = 0
        self._base = base
        self.engine: Any = engine_class(kind).for_env(self.rules, self._record, base, instrument)
        base.attach_compliance(self.engine)
        self._rule_keys = {r.name: f"compliance_{r.name}" for r in self.rules}
        # a quiet step's info (the common case, added in one update)
        self._quiet = {"compliance": 0, "compliance_penalty": 0.0}
        self._quiet.update(dict.fromkeys(self._rule_keys.values(), 0))

    # ------------------------------------------------------------------ audit
    def _record(self, rule: Rule, action: str, asked: dict, done: dict, why: str) -> None:
        penalty = rule.penalty_for(self.env_kind) if action == "penalize" else 0.0
        rec = self.audit.append(self.episode, self._t, rule.name, action, asked, done, why, penalty)
        del rec["episode"]  # info is per episode (and the checkers compare infos across resets)
        self._records.append(rec)
        self.violations += 1
        self._penalty += penalty
        if action == "trip":
            self._killed = 1
        self.engine.count(self._base, self.violations)

    def _report(self, info: dict[str, Any]) -> float:
        """Put the compliance keys into `info`; returns the step's penalty."""
        info.update(self._quiet)
        penalty = 0.0
        if self._records:  # the rare path: some rule intervened
            records, self._records = self._records, []
            self.step_records = records
            info["compliance"] = len(records)
            for rec in records:
                key = self._rule_keys[rec["rule"]]
                info[key] += 1
            penalty, self._penalty = self._penalty, 0.0
            info["compliance_penalty"] = penalty
        else:
            self.step_records = _NO_RECORDS
        info["compliance_violations"] = self.violations
        info["compliance_killed"] = self._killed
        return penalty

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.engine.close_episode(self._base)
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self.violations = 0
        self._t = 0
        self._penalty = 0.0
        self._killed = 0
        self._records = []
        self.engine.start_episode(self._base, info)
        self._report(info)
        return obs, info

    def step(self, action):
        engine, base = self.engine, self._base
        engine.before_step(base, self._t)
        obs, reward, terminated, truncated, info = self.env.step(action)
        engine.after_step(base, info)
        self._t += 1
        if self._report(info):
            reward = float(reward) - info["compliance_penalty"]
        return obs, reward, terminated, truncated, info

    def audit_summary(self):
        """`AuditLog.summary` of everything recorded so far."""
        return self.audit.summary()
