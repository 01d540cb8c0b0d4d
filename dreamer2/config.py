"""Typed configuration: dataclasses, YAML presets stacked on the defaults, dotted overrides.

The defaults are the paper's (the reference implementation's ``configs.yaml``); every preset in
``configs/*.yaml`` only lists what it changes. OmegaConf does the parsing and type conversion;
this module turns its errors into one-line messages that name the close matches.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A user-facing configuration problem, phrased as one line."""


@dataclass
class AtariConfig:
    """The paper's Atari protocol; each switch allows the other common ones."""
    sticky: float = 0.25  # repeat_action_probability inside ALE
    noops: int = 30  # up to this many no-ops at reset
    grayscale: bool = True
    life_done: bool = False  # end the episode (as terminal) when a life is lost
    full_actions: bool = False  # all 18 actions instead of the game's minimal set


@dataclass
class DMCConfig:
    camera: int = -1  # -1: the reference's choice (2 for quadruped, else 0)
    fast_render: bool = False  # no multisampling and 256 px shadow maps: faster, slightly different images


@dataclass
class MiniGridConfig:
    view: str = "rgb"  # rgb: the partial view as pixels | symbolic: the 7x7x3 codes as a vector


@dataclass
class EnvConfig:
    task: str = "gym:CartPole-v1"
    pixels: bool = False  # render rgb_array frames of a state-based env as the observation
    size: list[int] = field(default_factory=lambda: [64, 64])
    action_repeat: int = 1
    time_limit: int = 0  # agent steps; 0 keeps the env's own limit
    seed_offset_eval: int = 10_000  # eval env seed = seed + this, so eval never replays train seeds
    atari: AtariConfig = field(default_factory=AtariConfig)
    dmc: DMCConfig = field(default_factory=DMCConfig)
    minigrid: MiniGridConfig = field(default_factory=MiniGridConfig)


@dataclass
class RSSMConfig:
    deter: int = 1024
    hidden: int = 1024
    stoch: int = 32
    discrete: int = 32  # classes per categorical; 0 selects Gaussian latents (paper's ablation)
    norm: bool = False  # LayerNorm after the input layer of the image step
    min_std: float = 0.1  # Gaussian latents only


@dataclass
class CodecConfig:
    """Encoder or decoder: a CNN for image keys and an MLP for vector keys."""
    cnn_keys: str = ".*"  # regex over image observation keys
    mlp_keys: str = ".*"  # regex over vector observation keys
    cnn_depth: int = 48
    cnn_kernels: list[int] = field(default_factory=lambda: [4, 4, 4, 4])
    mlp_layers: int = 4
    mlp_units: int = 400
    norm: bool = False


@dataclass
class HeadConfig:
    layers: int = 4
    units: int = 400
    norm: bool = False


@dataclass
class KLConfig:
    balance: float = 0.8  # weight of the prior-side term KL(sg(post) || prior)
    free: float = 0.0  # free nats
    free_avg: bool = True  # apply free nats after averaging over the batch (reference default)


@dataclass
class LossScales:
    kl: float = 1.0
    reward: float = 1.0
    discount: float = 1.0
    image: float = 1.0
    vector: float = 1.0


@dataclass
class ModelConfig:
    pred_discount: bool = True  # learn a discount head; off uses behavior.discount everywhere
    clip_rewards: str = "identity"  # identity | tanh: transform of the reward target
    reward_scale: float = 1.0  # multiplies the reward target before the transform (not in the reference)
    # Standardize vector observations (encoder input and decoder target) by their running mean and
    # std over the training batches (not in the reference, which feeds raw vectors). Without it the
    # decoder's squared error weighs each dimension by its scale: CartPole's pole angle (std 0.04
    # rad) counts for 1/300 of the cart position's (0.7).
    obs_norm: bool = False
    grad_heads: list[str] = field(default_factory=lambda: ["decoder", "reward", "discount"])


@dataclass
class OptConfig:
    lr: float = 1e-4
    eps: float = 1e-5
    clip: float = 100.0
    wd: float = 1e-6  # decoupled: weights *= (1 - wd) each step, as the reference does
    # Linear learning-rate warmup over this optimizer's first `warmup` steps (DreamerV3's option;
    # 0, the reference DreamerV2's, starts at the full rate).
    warmup: int = 0


@dataclass
class ActorConfig:
    layers: int = 4
    units: int = 400
    norm: bool = False
    dist: str = "auto"  # auto | onehot | trunc_normal
    min_std: float = 0.1
    grad: str = "auto"  # auto | reinforce | dynamics | both
    grad_mix: float = 0.1  # weight of the dynamics term when grad is 'both'
    entropy: float = 2e-3
    # DreamerV3's return normalization (off in DreamerV2): the actor's return and advantage are
    # divided by max(1, S), S an EMA (decay 0.99) of the λ-returns' 95th - 5th percentile, so the
    # entropy bonus keeps its weight against returns of any scale.
    return_norm: bool = False
    # Scale of the output layer's initial weights (1: Glorot, as the reference; 0: zeros, so that the
    # first policy's mean is 0 in every state, as DDPG starts its actor near zero; not in DreamerV2).
    out_scale: float = 1.0
    # Weight of a penalty on the squared pre-tanh mean of continuous actions (the `mean_reg` of
    # SAC's original code; 0: none, as DreamerV2). Past |mean| ~3 tanh's gradient all but
    # vanishes, so an actor pushed to a bound by an early model cannot come back; the penalty's
    # gradient grows with the mean instead.
    mean_reg: float = 0.0


@dataclass
class CriticConfig:
    layers: int = 4
    units: int = 400
    norm: bool = False
    slow_target: bool = True
    slow_target_update: int = 100  # updates between copies into the slow critic
    slow_target_fraction: float = 1.0  # 1.0 is a hard copy
    slow_baseline: bool = True  # REINFORCE baseline from the slow critic


@dataclass
class BehaviorConfig:
    discount: float = 0.99
    discount_lambda: float = 0.95
    horizon: int = 15


@dataclass
class ReplayConfig:
    capacity: int = 2_000_000  # env steps held in memory; older episodes stay on disk only
    batch: int = 16
    length: int = 50
    prioritize_ends: bool = True
    # episode: draw an episode uniformly (the reference, which drops episodes under 50 steps);
    # step: draw it in proportion to its length, so that kept short episodes weigh by their steps.
    uniform: str = "episode"


@dataclass
class TrainConfig:
    steps: int = 1_000_000  # agent steps (env steps after action repeat; frames = steps * repeat)
    prefill: int = 10_000
    pretrain: int = 1
    train_every: int = 5
    train_steps: int = 1
    eval_every: int = 100_000
    eval_episodes: int = 1
    log_every: int = 10_000
    checkpoint_every: int = 10_000
    keep_best: bool = True  # also keep the weights of the best evaluation so far in best.pt (not in the reference)
    expl_noise: float = 0.0
    eval_noise: float = 0.0
    videos: bool = True  # at each evaluation: eval_policy, train_policy and openl videos
    eval_state_mean: bool = False  # evaluate from the posterior's mode instead of a sample (reference: off)


@dataclass
class Config:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    envs: int = 1  # training envs; above 1 each runs in its own worker process
    precision: str = "32"  # 32 | bf16 | 16: autocast of the networks (fp32 master weights); 16 adds a gradient scaler
    compile_policy: bool = False  # torch.compile the acting step (fp32; on a CPU it needs a C++ compiler)
    env: EnvConfig = field(default_factory=EnvConfig)
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    encoder: CodecConfig = field(default_factory=CodecConfig)
    decoder: CodecConfig = field(default_factory=lambda: CodecConfig(cnn_kernels=[5, 5, 6, 6]))
    reward_head: HeadConfig = field(default_factory=HeadConfig)
    discount_head: HeadConfig = field(default_factory=HeadConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    loss_scales: LossScales = field(default_factory=LossScales)
    model: ModelConfig = field(default_factory=ModelConfig)
    model_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=1e-4))
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    actor_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=8e-5))
    critic_opt: OptConfig = field(default_factory=lambda: OptConfig(lr=2e-4))
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Keys that may change when a logdir is resumed: they say how long or how often, not what is learned.
RESUMABLE_KEYS = frozenset({
    "device", "envs", "compile_policy", "train.steps", "train.eval_every", "train.eval_episodes", "train.log_every",
    "train.checkpoint_every", "train.keep_best",
})
ENUMS = {
    "precision": ("32", "bf16", "16"),
    "env.minigrid.view": ("rgb", "symbolic"),
    "model.clip_rewards": ("identity", "tanh"),
    "actor.dist": ("auto", "onehot", "trunc_normal"),
    "actor.grad": ("auto", "reinforce", "dynamics", "both"),
    "replay.uniform": ("episode", "step"),
}


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def all_keys(node: Any = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. ``rssm.deter``."""
    node = OmegaConf.structured(Config) if node is None else node
    keys = []
    for name in node.keys():
        value = node[name]
        if isinstance(value, DictConfig):
            keys += all_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _check_keys(keys: Iterable[str], source: str) -> None:
    known = all_keys()
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key '{key}' in {source}{hint}")


def flatten(mapping: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{dotted.key: value}``."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _merge(base: DictConfig, flat: Mapping[str, Any], source: str) -> DictConfig:
    _check_keys(flat, source)
    for key, value in flat.items():
        try:
            OmegaConf.update(base, key, value, merge=False)
        except OmegaConfBaseException:
            expected = type(OmegaConf.select(base, key)).__name__
            raise ConfigError(
                f"config key '{key}' in {source}: expected {expected}, got {value!r}") from None
        allowed = ENUMS.get(key)
        if allowed and OmegaConf.select(base, key) not in allowed:
            raise ConfigError(f"config key '{key}' in {source}: {value!r} is not one of {allowed}")
    return base


def load_preset(name: str) -> dict[str, Any]:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(name, presets(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown preset '{name}' (have: {', '.join(presets())}){hint}")
    return flatten(OmegaConf.to_container(OmegaConf.load(path)) or {})


def parse_overrides(tokens: Iterable[str]) -> dict[str, Any]:
    """``['--rssm.deter', '256', '--env.pixels=true']`` -> ``{'rssm.deter': 256, ...}``.

    Values are parsed as YAML scalars/lists, then converted to the schema's types on merge.
    """
    tokens = list(tokens)
    flat: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError(f"expected an option like --rssm.deter 256, got '{token}'")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise ConfigError(f"option '{token}' needs a value")
            key, value = token[2:], tokens[i + 1]
            i += 2
        flat[key] = OmegaConf.from_dotlist([f"x={value}"])["x"]
    return flat


def make_config(preset: str | Iterable[str] = "defaults",
                overrides: Mapping[str, Any] | None = None,
                base: DictConfig | None = None) -> DictConfig:
    """Defaults, then each named preset in order, then dotted overrides; validated and typed."""
    cfg = base.copy() if base is not None else OmegaConf.structured(Config)
    names = [preset] if isinstance(preset, str) else list(preset)
    for name in names:
        if name and name != "defaults":
            _merge(cfg, load_preset(name), f"preset '{name}'")
    if overrides:
        _merge(cfg, dict(overrides), "overrides")
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    checks = [
        (cfg.rssm.stoch > 0 and cfg.rssm.deter > 0, "rssm.stoch and rssm.deter must be positive"),
        (cfg.envs >= 1, "envs must be >= 1"),
        (not cfg.compile_policy or str(cfg.precision) == "32", "compile_policy needs precision 32 (where it was measured)"),
        (cfg.rssm.discrete >= 0, "rssm.discrete must be >= 0 (0 selects Gaussian latents)"),
        (0.0 <= cfg.kl.balance <= 1.0, "kl.balance must lie in [0, 1]"),
        (cfg.replay.batch > 0 and cfg.replay.length > 1, "replay.batch must be > 0 and replay.length > 1"),
        (cfg.behavior.horizon >= 2, "behavior.horizon must be >= 2"),
        (0.0 <= cfg.actor.grad_mix <= 1.0, "actor.grad_mix must lie in [0, 1]"),
        (cfg.train.train_every > 0, "train.train_every must be > 0"),
        (cfg.env.action_repeat > 0, "env.action_repeat must be > 0"),
        (len(cfg.env.size) == 2, "env.size must be [height, width]"),
        (min(cfg.model_opt.warmup, cfg.actor_opt.warmup, cfg.critic_opt.warmup) >= 0, "*_opt.warmup must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for key, allowed in ENUMS.items():
        if OmegaConf.select(cfg, key) not in allowed:
            raise ConfigError(f"config key '{key}': {OmegaConf.select(cfg, key)!r} is not one of {allowed}")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def from_yaml(text: str, source: str) -> DictConfig:
    try:
        loaded = OmegaConf.create(text)
    except Exception as err:  # yaml errors come in many types
        raise ConfigError(f"{source} is not valid YAML: {err}") from None
    return make_config("defaults", flatten(OmegaConf.to_container(loaded)))


def diff(old: DictConfig, new: DictConfig) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ: ``{key: (old, new)}``."""
    a = flatten(OmegaConf.to_container(old))
    b = flatten(OmegaConf.to_container(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
