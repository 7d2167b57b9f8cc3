"""Column names and file layout shared by the stages.

Run folder layout (``runs/<name>/``)::

    run.json                          resolved spec, seeds, git commit, versions, machine
    corpus -> the corpus root (manifest.parquet + corpus.json), shared across runs by content hash
    models/<model_key>/               checkpoint.pt, config.json, curves.csv, curves.png
    mixtures/<condition_id>/<utt_id>/ mixture.wav clean.wav noise.wav lips.npy corruption.npy
    mixtures.parquet                  one row per (utterance, condition): MIX_COLUMNS
    enhanced/<model_key>/<algorithm>/<condition_id>/<utt_id>.wav (+ .npz traces)
    enhanced.parquet                  one row per (item, model, algorithm): ENH_COLUMNS
    results.parquet / results.csv     one row per (utterance, condition, model, algorithm)
    failures.parquet                  one row per failed job (stage, key, error, traceback)

``model_key`` is :func:`model_key` of the model label (``av-vae/gated`` -> ``av-vae__gated``).
An item is one (utterance, condition): :func:`item_id`; its mixture without the visual condition
is :func:`pair_id` (shared by the clean- and corrupted-video items of a mixture, which the
enhancement seeds its random streams from: common random numbers).

Traces ``.npz`` keys (all optional but ``cost``): ``weights_encoder`` and ``weights_decoder``
``[T, 2]`` (column 1 = visual weight, at the STFT frame rate), ``corruption_stft`` ``[T]``
(corruption level of the video frame shown at each STFT frame), ``cost`` ``[n_iter]``,
``acceptance`` ``[n_iter]`` (MCEM), ``frame_rate`` (scalar, STFT frames per second); the EM
algorithms add ``n_iter``, ``gain_g`` ``[T]``, ``decoder_calls`` (decoder passes, each over all
chains or samples) and, for MCEM, ``final_acceptance``.
"""
from __future__ import annotations

from typing import Any, Mapping

ITEM_COLUMNS = [
    "item_id", "utt_id", "speaker", "condition_id", "noise", "snr_db", "snr_definition",
    "corruption", "severity", "seed",
]
MIX_COLUMNS = ITEM_COLUMNS + [
    "mixture_path", "clean_path", "noise_path", "lips_path", "corruption_path", "fps", "n_samples",
    "snr_measured_db", "corrupted_fraction",
]
ENH_COLUMNS = [
    "item_id", "model_id", "model", "fusion", "algorithm", "enhanced_path", "traces_path",
    "wall_time_s", "rtf", "device", "status", "error",
]
RESULT_ID_COLUMNS = ITEM_COLUMNS + ["model_id", "model", "fusion", "algorithm"]
# optional id column: the training seed of the row's model (one run per seed of training.seeds);
# may be empty for the baselines, which are not trained. The report resamples it (benchmark.report.stats).
TRAIN_SEED_COLUMN = "train_seed"
OPTIONAL_ID_COLUMNS = [TRAIN_SEED_COLUMN]
# metric columns: "<metric>", "input_<metric>", "delta_<metric>", "<metric>_error" (reason or "")
WEIGHT_COLUMNS = [
    "visual_weight_mean", "visual_weight_mean_clean_frames", "visual_weight_mean_corrupted_frames",
    "visual_weight_auc",
]
STATUS_COLUMNS = ["status", "error", "wall_time_s", "rtf"]
STATUS_OK, STATUS_FAILED = "ok", "failed"


def model_key(label: str) -> str:
    """File-system-safe key of a model label."""
    return label.replace("/", "__").replace(" ", "_")


def item_id(utt_id: str, condition_id: str) -> str:
    """The id of one (utterance, condition) item: ``<condition_id>/<utt_id>``."""
    return f"{condition_id}/{utt_id}"


def pair_id(utt_id: str, noise: str, snr_db: float, snr_definition: str = "energy", seed: int = 0) -> str:
    """The identity of an item's *mixture* without its visual condition:
    ``mix:<noise>_snr<snr>[act]_s<seed>/<utt_id>``.

    The items of one utterance under the same noise, SNR (and SNR definition) and condition seed
    but different video corruptions share it: the mixing draws their noise segment and offset
    from seeds that do not include the corruption (:mod:`benchmark.conditions.build`), so their
    mixtures are the same samples. The enhancement seeds its random streams (EM sampling, NMF
    initialisation) from it, so the clean- and corrupted-video runs of a mixture use common
    random numbers and a paired difference between them measures the video alone.
    """
    act = "act" if snr_definition == "active" else ""
    return f"mix:{noise}_snr{float(snr_db):g}{act}_s{int(seed)}/{utt_id}"


def pair_id_of(row: Mapping[str, Any]) -> str:
    """:func:`pair_id` of a mixtures-table row (``utt_id``, ``noise``, ``snr_db``,
    ``snr_definition``, ``seed``); the row's ``item_id`` when one of them is missing."""
    try:
        return pair_id(str(row["utt_id"]), str(row["noise"]), float(row["snr_db"]),
                       str(row.get("snr_definition") or "energy"), int(row["seed"]))
    except (KeyError, TypeError, ValueError):
        return str(row["item_id"])
