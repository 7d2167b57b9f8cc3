"""Experiment specification: dataclasses loaded from YAML presets.

(Over 400 lines on purpose: this is the whole configuration schema -- one dataclass per section
and its loading and validation -- so that a preset's keys and their checks are read in one place;
the ``models`` and ``training`` sections are defined in :mod:`models.training_config` and
re-exported here.)

A preset may ``extends: <preset name or path>`` another one and override any key; the CLI
overrides keys with ``--set section.key=value`` (the value is parsed as YAML). Every unknown
key, wrong type or out-of-range value is a :class:`~benchmark.configtools.ConfigError` that
names the file and the dotted key.

Loading (:func:`load_spec`, :func:`spec_from_dict`) also runs :func:`check_spec` before anything
else can happen: every registered name (corpus, noises, corruptions, models, fusions, visual
front-ends, algorithms, baselines, metrics) is looked up in its registry, and every nested
settings map is validated against the config dataclass of the entry it configures -- unknown keys
(with a did-you-mean), types, the declared ``range``/``choices`` of the fields and the class's own
rules: ``enhance.algorithm_params.<algorithm>`` against the algorithm's ``config_cls``,
``models[i].params`` against :class:`models.vae.VAEConfig` (or the composite models'
:class:`models.mixture.CompositeConfig`), ``models[i].params.fusion_params`` against the fusion's
config class (``models.fusion.base.fusion_config_class`` where it exists, else ``FusionConfig``),
``models[i].training`` against :class:`TrainingSpec`, ``corpus.options`` against the keys the
corpus builder declares, ``conditions.noise_options.<noise>`` against the options the noise's
factory declares (:class:`noise_sets.base.NoiseFactory`; the dataset loaders also list their
files here, so a missing root folder or a wrong layout fails before any training). Each VAE entry
is then built once on the CPU (a few milliseconds, the global torch RNG left as it was) so that
what only the model's constructor checks fails here too.

Each stage owns its section; add a field to the section your stage reads (with a default, a
type and, where it applies, a ``range``/``choices`` in the field metadata).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from benchmark.configtools import ConfigError, deep_merge, did_you_mean, from_dict, load_yaml, set_dotted, to_dict
# the model entries and training settings live in the research core (models.training_config, so
# that models.training does not import this schema); re-exported here as part of the schema
from models.training_config import EXTERNAL_MODEL, RELSUP_SUFFIX, ModelEntry, TrainingSpec

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class CorpusSpec:
    """Which corpus to build or read (``name`` is a key of the corpus registry)."""

    name: str = "synthetic"
    root: Optional[str] = None  # where the corpus lives; default: data/corpus/<name>-<settings hash>
    seed: int = 0
    n_train_speakers: int = field(default=12, metadata={"range": (1, 10000)})
    n_val_speakers: int = field(default=2, metadata={"range": (0, 10000)})
    n_test_speakers: int = field(default=4, metadata={"range": (1, 10000)})
    n_babble_speakers: int = field(default=4, metadata={"range": (0, 10000)})  # speakers kept for babble noise only
    utts_per_speaker: int = field(default=20, metadata={"range": (1, 100000)})
    sample_rate: int = field(default=16000, metadata={"choices": (16000,)})
    fps: float = field(default=25.0, metadata={"range": (1.0, 240.0)})
    lip_size: int = field(default=64, metadata={"range": (8, 512)})
    skip_bad: bool = False  # skip invalid items (listed in a report) instead of aborting
    jobs: int = field(default=2, metadata={"range": (1, 256)})
    options: dict[str, Any] = field(default_factory=dict)  # adapter-specific settings


@dataclass
class ConditionsSpec:
    """The test-condition grid: noises x SNRs x visual corruptions."""

    split: str = field(default="test", metadata={"choices": ("train", "val", "test")})
    n_utterances: Optional[int] = field(default=None, metadata={"range": (1, None)})  # None: all of the split
    noises: list[str] = field(default_factory=lambda: ["white", "babble"])
    snrs_db: list[float] = field(default_factory=lambda: [0.0, 5.0], metadata={"range": (-30.0, 50.0)})
    snr_definition: str = field(default="energy", metadata={"choices": ("energy", "active")})
    # each entry: "none", "kind@severity", or a composition "kind@sev+kind@sev"
    corruptions: list[str] = field(default_factory=lambda: ["none"])
    seed: int = 0
    peak_normalise: bool = False
    allow_noise_loop: bool = True
    # keyed by noise name (each a name of ``noises``): the keyword options of that noise's factory
    # only, e.g. {"demand-DKITCHEN": {"root": "/data/DEMAND"}, "musan": {"root": "/data/musan"}};
    # noises without an entry get none (built-in noises reject unknown options)
    noise_options: dict[str, Any] = field(default_factory=dict)
    # condition filters ({noises: [...], snrs_db: [...], corruptions: [...]}, benchmark/conditions/
    # subsets.py); a condition matching any of them is left out of the grid
    exclude: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, opts in self.noise_options.items():
            if name not in self.noises:
                raise ConfigError(
                    f"key 'conditions.noise_options.{name}': {name!r} is not one of conditions.noises "
                    f"{list(self.noises)} (noise_options is keyed by noise name, e.g. "
                    f"{{demand-DKITCHEN: {{root: /data/DEMAND}}}})")
            if not isinstance(opts, dict):
                raise ConfigError(f"key 'conditions.noise_options.{name}': expected a mapping of options of noise "
                                  f"{name!r} (e.g. {{root: /data/...}}), got {type(opts).__name__} {opts!r}")

    def options_for(self, noise: str) -> dict[str, Any]:
        """The factory options of one noise (``noise_options[noise]``, else none)."""
        return dict(self.noise_options.get(noise) or {})


@dataclass
class EnhanceSpec:
    """Unsupervised enhancement: algorithms (registry names) and their settings."""

    algorithms: list[str] = field(default_factory=lambda: ["ldem"])
    baselines: list[str] = field(default_factory=lambda: ["noisy"])
    algorithm_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    nmf_rank: int = field(default=10, metadata={"range": (1, 1000)})
    device: str = field(default="cpu", metadata={"choices": ("cpu", "cuda", "auto")})
    # padded STFT frames per enhancement batch; "auto": measured on a GPU (free memory over the
    # bytes per frame of a probe batch), 20000 on CPU (models/enhancement/api.py)
    frame_budget: Union[int, Literal["auto"]] = field(default="auto", metadata={"range": (1, None)})
    seed: int = 0
    # keyed by an algorithm / baseline name or a model entry's label: the part of the condition grid
    # it runs on (a condition filter, benchmark/conditions/subsets.py; a label's filter may also name
    # `algorithms`), e.g. {mcem: {snrs_db: [-5.0], corruptions: [none]}}; not listed: the whole grid
    subsets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class MetricsSpec:
    """Which metrics to compute (registry names) and their settings."""

    names: list[str] = field(default_factory=lambda: ["si_sdr", "pesq_wb", "pesq_nb", "stoi", "estoi", "sdr"])
    pesq_mode: str = field(default="wb", metadata={"choices": ("wb", "nb")})
    jobs: int = field(default=2, metadata={"range": (1, 256)})


@dataclass
class RunnerSpec:
    """How jobs are executed."""

    jobs: int = field(default=1, metadata={"range": (1, 256)})
    # joblib: `jobs` worker processes (serial when jobs == 1); serial: one process whatever `jobs`
    # says; dask: a local cluster of `jobs` workers unless `dask_local`/`scheduler` are given
    executor: str = field(default="joblib", metadata={"choices": ("serial", "joblib", "dask")})
    scheduler: Optional[str] = None  # tcp://host:port of an existing Dask scheduler
    dask_local: int = field(default=0, metadata={"range": (0, 256)})
    limit: Optional[int] = field(default=None, metadata={"range": (1, None)})


@dataclass
class ReportSpec:
    """Report settings."""

    bootstrap: int = field(default=2000, metadata={"range": (10, 10_000_000)})
    ci: float = field(default=0.95, metadata={"range": (0.5, 0.999)})
    n_examples: int = field(default=2, metadata={"range": (0, 100)})
    reference: Optional[str] = None  # YAML of published figures for the reference comparison
    seed: int = 0
    # paired tests: each system vs the systems matching any "column=value" selector (same algorithm)
    references: list[str] = field(default_factory=lambda: ["fusion=concat", "model=a-vae"])
    figure_formats: list[str] = field(default_factory=lambda: ["png", "pdf"])  # png is always written (HTML)
    weights_side: str = field(default="decoder", metadata={"choices": ("decoder", "encoder")})
    metrics: Optional[list[str]] = None  # metric columns to report (e.g. [si_sdr, stoi]); None: all found


@dataclass
class ExperimentSpec:
    """A whole experiment: what to build, train, mix, enhance, score and report."""

    name: str = "unnamed"
    description: str = ""
    seed: int = 0
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    conditions: ConditionsSpec = field(default_factory=ConditionsSpec)
    models: list[ModelEntry] = field(default_factory=lambda: [ModelEntry()])
    training: TrainingSpec = field(default_factory=TrainingSpec)
    enhance: EnhanceSpec = field(default_factory=EnhanceSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    runner: RunnerSpec = field(default_factory=RunnerSpec)
    report: ReportSpec = field(default_factory=ReportSpec)

    def __post_init__(self) -> None:
        if self.training.reliability_loss_weight > 0:
            raise ConfigError(
                "key 'training.reliability_loss_weight': set it per model (models[].training."
                "reliability_loss_weight), so that the model's label shows the corruption supervision "
                f"({RELSUP_SUFFIX!r})")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _resolve_preset_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_absolute() and relative_to is not None and (relative_to / p).exists():
            p = relative_to / p
        if not p.exists():
            raise ConfigError(f"preset file not found: {p}")
        return p
    cand = PRESET_DIR / f"{name_or_path}.yaml"
    if not cand.exists():
        raise ConfigError(f"unknown preset {name_or_path!r}; known: {', '.join(preset_names())}")
    return cand


def load_raw(name_or_path: str, _seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The merged raw mapping of a preset (following ``extends``), and its source file."""
    path = _resolve_preset_path(name_or_path)
    key = str(path.resolve())
    if key in _seen:
        raise ConfigError(f"{path}: circular 'extends' chain: {' -> '.join(_seen + (key,))}")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping at top level")
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: key 'extends': expected a preset name or path")
        base, _ = load_raw(str(_resolve_preset_path(parent, path.parent)), _seen + (key,))
        data = deep_merge(base, data)
    return data, str(path)


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (for example enhance.algorithms=[ldem])")
        k, v = item.split("=", 1)
        try:
            value = load_yaml(v)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {k}: value {v!r} is not valid YAML: {exc}") from exc
        set_dotted(out, k.strip(), value)
    return out


def load_spec(name_or_path: str = "smoke", overrides: list[str] | None = None) -> ExperimentSpec:
    """Load a preset (by name or YAML path), apply ``--set`` overrides, validate (types, ranges
    and every registered name and nested settings map: :func:`check_spec`)."""
    data, source = load_raw(name_or_path)
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
        source = f"{source} (with --set {' '.join(overrides)})"
    spec = from_dict(ExperimentSpec, data, source=source)
    check_spec(spec, source)
    return spec


def spec_from_dict(data: dict[str, Any], source: str = "<dict>") -> ExperimentSpec:
    """Validate a plain mapping as an :class:`ExperimentSpec` (as :func:`load_spec` does)."""
    spec = from_dict(ExperimentSpec, data, source=source)
    check_spec(spec, source)
    return spec


# ---------------------------------------------------------------------------------------------
# names and nested settings (check_spec)


def _lookup(registry: Any, name: Any, key: str, source: str) -> Any:
    """``registry.get(name)``; an unknown name is a :class:`ConfigError` naming ``key`` (with the
    registry's did-you-mean and known names)."""
    try:
        return registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"{source}: key '{key}': {exc.args[0]}") from None


def _wrap(exc: Exception, key: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: key '{key}': {exc}")


def fusion_config_class(name: str) -> type:
    """The config dataclass of fusion ``name``: ``models.fusion.base.fusion_config_class(name)``
    where the fusion zoo provides it (one config class per fusion), else the shared ``FusionConfig``."""
    import models.fusion.base as fb

    per_fusion = getattr(fb, "fusion_config_class", None)
    return per_fusion(name) if per_fusion is not None else fb.FusionConfig


def _check_corpus(c: CorpusSpec, source: str) -> None:
    """``corpus.name`` in the corpus registry; ``corpus.options`` keys against the option table
    its builder's module declares (``OPTIONS`` of the adapters, ``DEFAULT_OPTIONS`` of the
    synthetic corpus), when it declares one."""
    from benchmark.corpus import CORPORA

    builder = _lookup(CORPORA, c.name, "corpus.name", source)
    module = sys.modules.get(getattr(builder, "__module__", ""), None)
    known = getattr(module, "OPTIONS", None) or getattr(module, "DEFAULT_OPTIONS", None)
    if isinstance(known, dict):
        for k in c.options:
            if k not in known:
                raise ConfigError(f"{source}: unknown key 'corpus.options.{k}'{did_you_mean(k, known)} "
                                  f"(options of corpus {c.name!r}: {', '.join(sorted(known))})")


def _check_conditions(cs: ConditionsSpec, source: str) -> None:
    from benchmark.conditions.corruptions import CorruptionError, parse_corruption
    from noise_sets import NOISES

    for i, noise in enumerate(cs.noises):
        factory = _lookup(NOISES, noise, f"conditions.noises[{i}]", source)
        factory.check(cs.options_for(noise), source=source, prefix=f"conditions.noise_options.{noise}")
    for i, corr in enumerate(cs.corruptions):
        try:
            parse_corruption(corr)
        except CorruptionError as exc:
            raise _wrap(exc, f"conditions.corruptions[{i}]", source) from None
    from benchmark.conditions.subsets import check_filter, excluded

    for i, filt in enumerate(cs.exclude):
        check_filter(filt, cs, f"conditions.exclude[{i}]", source)
    if cs.exclude and all(excluded(cs.exclude, n, s, c) for n in cs.noises for s in cs.snrs_db for c in cs.corruptions):
        raise ConfigError(f"{source}: key 'conditions.exclude': it leaves no condition of the grid")


def _check_subsets(spec: ExperimentSpec, source: str) -> None:
    """``enhance.subsets``: each key an algorithm / baseline of the run or a model entry's label,
    each value a condition filter of the grid (a label's may name ``algorithms`` too)."""
    from benchmark.conditions.subsets import check_filter

    es = spec.enhance
    algs = list(es.algorithms) + list(es.baselines)
    labels = [m.label for m in spec.models]
    for name, filt in es.subsets.items():
        key = f"enhance.subsets.{name}"
        if name in algs:
            check_filter(filt, spec.conditions, key, source)
        elif name in labels:
            check_filter(filt, spec.conditions, key, source, extra={"algorithms": es.algorithms})
        else:
            known = algs + labels
            raise ConfigError(f"{source}: key '{key}': {name!r} is neither an algorithm / baseline of this run nor a "
                              f"model label{did_you_mean(name, known)} (known: {', '.join(known)})")


def _model_config(entry: ModelEntry, i: int, spec: ExperimentSpec, source: str) -> Any:
    """The validated config of model entry ``i`` (its ``params`` against the model's config class)."""
    from models.mixture import CompositeConfig, is_composite
    from models.registry import FRONTENDS, FUSIONS, MODELS

    key = f"models[{i}]"
    brought = _check_brought(entry, key, source)
    if brought is not None:
        return brought
    cls = _lookup(MODELS, entry.name, f"{key}.name", source)
    if entry.fusion is not None:
        _lookup(FUSIONS, entry.fusion, f"{key}.fusion", source)
    if is_composite(entry.name):
        if entry.fusion is not None:
            raise ConfigError(f"{source}: key '{key}.fusion': the composite {entry.name!r} takes no fusion "
                              f"(its components are other model entries, named in params.audio / params.visual)")
        cfg = from_dict(CompositeConfig, dict(entry.params), source=source, prefix=f"{key}.params")
        try:
            CompositeConfig.from_dict(to_dict(cfg))  # its own rules (probabilities strictly inside (0, 1))
        except ValueError as exc:
            raise _wrap(exc, f"{key}.params", source) from None
        labels = {m.label for m in spec.models if m is not entry}
        for role in ("audio", "visual"):
            ref = getattr(cfg, role)
            if ref not in labels and not Path(ref).exists():
                raise ConfigError(f"{source}: key '{key}.params.{role}': {ref!r} is not the label of another model "
                                  f"entry{did_you_mean(ref, labels)} (labels: {', '.join(sorted(labels))})")
        return cfg
    from models.vae import VAEConfig, _VAEBase

    config_cls = VAEConfig if isinstance(cls, type) and issubclass(cls, _VAEBase) else getattr(cls, "config_cls", None)
    if config_cls is None:
        return dict(entry.params)
    params = {**getattr(cls, "config_defaults", {}), **dict(entry.params)}  # e.g. av-cvae: visual_prior, L = 32
    if entry.name == "a-vae" and (entry.fusion or params.get("fusion")):
        raise ConfigError(f"{source}: key '{key}.fusion': the audio-only a-vae takes no fusion")
    cfg = from_dict(config_cls, params, source=source, prefix=f"{key}.params")
    if config_cls is VAEConfig and getattr(cls, "is_audio_visual", False):
        fusion = entry.fusion or cfg.fusion
        if not fusion:
            raise ConfigError(f"{source}: key '{key}.fusion': the audio-visual {entry.name!r} needs a fusion; "
                              f"known: {', '.join(FUSIONS.names())}")
        _lookup(FUSIONS, fusion, f"{key}.fusion" if entry.fusion else f"{key}.params.fusion", source)
        _lookup(FRONTENDS, cfg.frontend, f"{key}.params.frontend", source)
        fkey = f"{key}.params.fusion_params"
        for width, owner in (("audio_dim", "hidden"), ("visual_dim", "visual_dim"), ("out_dim", "hidden")):
            if width in cfg.fusion_params:  # the model passes its own widths to the fusion
                raise ConfigError(f"{source}: key '{fkey}.{width}': set by the model (params.{owner}); remove it")
        from_dict(fusion_config_class(fusion), dict(cfg.fusion_params), source=source, prefix=fkey)
    return _try_build(entry, key, source)


def _check_brought(entry: ModelEntry, key: str, source: str) -> Optional[dict[str, Any]]:
    """An outside system (``name: external``: its ``outputs`` must exist) or a trained
    ``checkpoint`` (format tag, name, fusion and the entry's params checked against the
    checkpoint's ``config.json``: a mismatch names both values); None for any other entry."""
    if entry.external:
        if entry.outputs is None or entry.checkpoint is not None or entry.fusion is not None or entry.params:
            raise ConfigError(f"{source}: key '{key}': an external system takes 'outputs' (a folder or wav.scp of its "
                              "enhanced files), optionally 'id' and 'algorithm', nothing else")
        if not Path(entry.outputs).exists():
            raise ConfigError(f"{source}: key '{key}.outputs': {entry.outputs} does not exist "
                              f"(resolved against the current directory: {Path(entry.outputs).resolve()})")
        return {"outputs": str(Path(entry.outputs).resolve()), "algorithm": entry.algorithm or EXTERNAL_MODEL}
    if entry.outputs is not None or entry.algorithm is not None:
        raise ConfigError(f"{source}: key '{key}': 'outputs'/'algorithm' are for external systems (name: external)")
    if entry.checkpoint is None:
        return None
    from models.checkpoint import check_checkpoint

    try:
        header, bad = check_checkpoint(entry.checkpoint, entry.name, entry.fusion, entry.params)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"{source}: key '{key}.checkpoint': {exc}") from None
    if bad:
        raise ConfigError(f"{source}: key '{key}.checkpoint': the checkpoint does not match the entry: " + "; ".join(
            f"{key}.{k} is {w!r} but checkpoint {entry.checkpoint} has {k} {h!r}" for k, w, h in bad))
    return dict(header.get("config") or {})


def _try_build(entry: ModelEntry, key: str, source: str) -> Any:
    """Build the model once on the CPU (the global torch RNG is restored), so that every check of
    its constructor (e.g. a fusion's own option rules) fails at load time; return its config
    (with the model's own defaults, e.g. the AV-CVAE's latent dimension)."""
    import torch

    from models.checkpoint import build_model

    with torch.random.fork_rng(devices=[]):
        try:
            model = build_model(entry.name, dict(entry.params), fusion=entry.fusion)
        except ConfigError as exc:
            raise _wrap(exc, key, source) from None
        except (ValueError, TypeError, KeyError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ConfigError(f"{source}: key '{key}' ({entry.label}): the model cannot be built: {msg}") from None
    return model.config_dict() if hasattr(model, "config_dict") else getattr(model, "config", None)


def _algorithm_config(name: str, params: dict[str, Any], key: str, source: str) -> Any:
    from models.enhancement.registry import ALGORITHMS

    cls = _lookup(ALGORITHMS, name, key, source).config_cls
    if not dataclasses.is_dataclass(cls):
        return dict(params)
    return from_dict(cls, dict(params), source=source, prefix=f"enhance.algorithm_params.{name}")


def check_spec(spec: ExperimentSpec, source: str = "<spec>") -> dict[str, Any]:
    """Resolve every registered name of ``spec`` and validate every nested settings map (see the
    module docstring); raise :class:`ConfigError` naming ``source`` and the full key path.

    Returns the resolved settings with every default filled in: ``{"algorithms": {name: config},
    "models": {label: config}}`` (plain data), what ``avbench validate`` prints after the spec."""
    from benchmark.conditions.corruptions import CORRUPTIONS
    from benchmark.metrics import METRICS

    _check_corpus(spec.corpus, source)
    _check_conditions(spec.conditions, source)
    for i, kind in enumerate(spec.training.augment_kinds or []):
        _lookup(CORRUPTIONS, kind, f"training.augment_kinds[{i}]", source)
    models: dict[str, Any] = {}
    for i, entry in enumerate(spec.models):
        if entry.training:
            tr = from_dict(TrainingSpec, {**to_dict(spec.training), **entry.training}, source=source,
                           prefix=f"models[{i}].training")
            for j, kind in enumerate(tr.augment_kinds or []):
                _lookup(CORRUPTIONS, kind, f"models[{i}].training.augment_kinds[{j}]", source)
        models[entry.label] = to_dict(_model_config(entry, i, spec, source))
    es = spec.enhance
    algorithms: dict[str, Any] = {}
    for field_name in ("algorithms", "baselines"):
        for i, name in enumerate(getattr(es, field_name)):
            algorithms[name] = to_dict(_algorithm_config(name, es.algorithm_params.get(name, {}),
                                                         f"enhance.{field_name}[{i}]", source))
    for name, params in es.algorithm_params.items():
        if name not in algorithms:  # settings of an algorithm this run does not use: still checked
            _algorithm_config(name, params, f"enhance.algorithm_params.{name}", source)
    _check_subsets(spec, source)
    for i, name in enumerate(spec.metrics.names):
        _lookup(METRICS, name, f"metrics.names[{i}]", source)
    return {"algorithms": algorithms, "models": models}


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` re-exported for convenience."""
    return dataclasses.replace(obj, **changes)


__all__ = [
    "ConfigError", "CorpusSpec", "ConditionsSpec", "ModelEntry", "TrainingSpec", "EnhanceSpec",
    "MetricsSpec", "RunnerSpec", "ReportSpec", "ExperimentSpec", "load_spec", "preset_names",
    "parse_overrides", "spec_from_dict", "check_spec", "fusion_config_class",
]
