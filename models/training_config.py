"""Configuration of speech-model training: :class:`ModelEntry` (one model to train) and
:class:`TrainingSpec` (the training settings).

They live in the research core so that :mod:`models.training` does not import the experiment
schema (:mod:`benchmark.spec`, which imports every registry to validate names);
:mod:`benchmark.spec` imports and re-exports them as the ``models`` and ``training`` sections of a
preset, so ``from benchmark.spec import ModelEntry, TrainingSpec`` keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

#: the model name of an outside system's entry (``{name: external, id: ..., outputs: DIR}``)
EXTERNAL_MODEL = "external"

#: label suffix of models trained with the auxiliary reliability (corruption-supervision) loss
RELSUP_SUFFIX = "+relsup"


@dataclass
class ModelEntry:
    """One speech model to train and evaluate (``name`` in the model registry)."""

    name: str = "a-vae"
    fusion: Optional[str] = None
    id: Optional[str] = None  # label in tables; default "<name>" or "<name>/<fusion>"
    params: dict[str, Any] = field(default_factory=dict)  # model config overrides
    training: dict[str, Any] = field(default_factory=dict)  # training config overrides
    # a trained checkpoint folder to use instead of training (relative: to the current directory);
    # checked against name/fusion/params when the spec is loaded
    checkpoint: Optional[str] = None
    # ``name: external`` only: a folder (``<condition_id>/<utt_id>.wav``) or wav.scp (keyed by item
    # id) of another system's enhanced files (relative: to the current directory), and the label of
    # its algorithm column (default "external")
    outputs: Optional[str] = None
    algorithm: Optional[str] = None

    @property
    def external(self) -> bool:
        """An outside system whose enhanced files are given (``name: external``)."""
        return self.name == EXTERNAL_MODEL

    @property
    def label(self) -> str:
        """The model's name in tables: ``id``, else ``<name>`` or ``<name>/<fusion>``, plus
        :data:`RELSUP_SUFFIX` when trained with the reliability loss."""
        label = self.id or (f"{self.name}/{self.fusion}" if self.fusion else self.name)
        # a model trained with corruption supervision (training.reliability_loss_weight > 0) says so
        # in every table
        if float(self.training.get("reliability_loss_weight") or 0) > 0 and RELSUP_SUFFIX not in label:
            label += RELSUP_SUFFIX
        return label


@dataclass
class TrainingSpec:
    """Clean-speech training defaults (per-model overrides in ``ModelEntry.training``)."""

    epochs: int = field(default=20, metadata={"range": (1, 100000)})
    lr: float = field(default=1e-4, metadata={"range": (0.0, 1.0)})
    batch_size: int = field(default=32, metadata={"range": (1, 100000)})
    seq_len: int = field(default=50, metadata={"range": (1, 100000)})
    patience: int = field(default=5, metadata={"range": (0, 100000)})
    # learning-rate decay on a validation plateau (torch ReduceLROnPlateau on the validation
    # negative ELBO): the lr is multiplied by lr_decay after lr_decay_patience epochs without
    # improvement, down to lr * lr_decay_floor; 1.0 = off (the published code keeps the lr fixed)
    lr_decay: float = field(default=1.0, metadata={"range": (0.0, 1.0)})
    lr_decay_patience: int = field(default=3, metadata={"range": (0, 100000)})
    lr_decay_floor: float = field(default=0.01, metadata={"range": (0.0, 1.0)})
    kl_warmup_epochs: int = field(default=0, metadata={"range": (0, 100000)})
    reliability_augmentation: bool = True
    # visual-reliability augmentation (models/augment.py): probability of one random visual
    # corruption per utterance and epoch, of whole-video dropout, and the corruption kinds
    # (None: every kind of models.augment.PREFERRED_KINDS the corruption registry has)
    augment_p_corrupt: float = field(default=0.5, metadata={"range": (0.0, 1.0)})
    augment_p_drop: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    augment_kinds: Optional[list[str]] = None
    init_from_avae: bool = True
    max_minutes: Optional[float] = field(default=None, metadata={"range": (0.0, None)})
    seed: int = 0
    # training seeds as a grid axis: every trained model is trained once per seed (None: the one
    # run of ``seed``; benchmark.runner.stages.train), result rows carry ``train_seed``
    seeds: Optional[list[int]] = None

    @property
    def seed_list(self) -> list[int]:
        """The training seeds of a run: ``seeds`` (duplicates dropped, order kept), else ``[seed]``."""
        return list(dict.fromkeys(int(s) for s in self.seeds)) if self.seeds else [int(self.seed)]

    device: str = field(default="cpu", metadata={"choices": ("cpu", "cuda", "auto")})
    # audio-side degradation of the encoder input (models.augment.AudioMaskConfig; off by
    # default): per sequence, probability of frame masking (runs of up to audio_mask_max_frames
    # STFT frames, audio_mask_n_frames of them), of band masking (up to audio_mask_max_bins bins,
    # audio_mask_n_bands bands) and of white noise at an SNR ~ U[audio_noise_snr_db]
    audio_mask_p_frames: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    audio_mask_n_frames: int = field(default=2, metadata={"range": (0, 1000)})
    audio_mask_max_frames: int = field(default=10, metadata={"range": (1, 100000)})
    audio_mask_p_bands: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    audio_mask_n_bands: int = field(default=2, metadata={"range": (0, 1000)})
    audio_mask_max_bins: int = field(default=64, metadata={"range": (1, 100000)})
    audio_noise_p: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    audio_noise_snr_db: list[float] = field(default_factory=lambda: [-5.0, 10.0], metadata={"range": (-30.0, 50.0)})
    # auxiliary reliability loss on the fusions' per-frame visual weight, driven by the corruption
    # level of the visual augmentation (0 = off; set it per model: the label gets "+relsup"):
    # "rank" paired hinge (clean vs corrupted video of the same frame, reliability_margin * level),
    # "penalty" level * w_v, "bce"/"mse" the first, ill-posed version (models/reliability.py)
    reliability_loss_weight: float = field(default=0.0, metadata={"range": (0.0, None)})
    reliability_loss: str = field(default="rank", metadata={"choices": ("rank", "penalty", "bce", "mse")})
    reliability_margin: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
