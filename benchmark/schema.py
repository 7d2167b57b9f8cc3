"""Column names and file layout shared by the stages (the contracts of DESIGN.md).

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

Traces ``.npz`` keys (all optional but ``cost``): ``weights_encoder`` and ``weights_decoder``
``[T, 2]`` (column 1 = visual weight, at the STFT frame rate), ``corruption_stft`` ``[T]``
(corruption level of the video frame shown at each STFT frame), ``cost`` ``[n_iter]``,
``acceptance`` ``[n_iter]`` (MCEM), ``frame_rate`` (scalar, STFT frames per second); the EM
algorithms add ``n_iter``, ``gain_g`` ``[T]``, ``decoder_calls`` (decoder passes, each over all
chains or samples) and, for MCEM, ``final_acceptance``.
"""
from __future__ import annotations

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
    return f"{condition_id}/{utt_id}"
