"""The condition grid: ids, pure per-item mixing, determinism across processes, files on disk."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from benchmark.audio_io import read_audio, read_lips
from benchmark.conditions.build import Condition, build_mixtures, expand_conditions, make_item, write_item
from benchmark.corpus.manifest import load_utterance, read_manifest, select
from benchmark.schema import MIX_COLUMNS
from benchmark.spec import ConditionsSpec
from noise_sets import NOISES


def test_condition_ids_unique_readable_safe():
    cs = ConditionsSpec(noises=["white", "babble", "LR"], snrs_db=[-5.0, 0.0, 2.5, 5.0],
                        corruptions=["none", "occlusion@0.7", "occlusion@0.5+blur@0.3:0.4", "missing"], seed=3)
    conds = expand_conditions(cs)
    assert len(conds) == 3 * 4 * 4
    ids = [c.condition_id for c in conds]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9._+-]+", i) for i in ids)
    assert "babble_snr-5_occlusion-0.7_s3" in ids
    # same condition spelled differently -> one condition
    assert len(expand_conditions(ConditionsSpec(noises=["white"], snrs_db=[0.0], corruptions=["blur@0.50", "blur@0.5"]))) == 1
    assert Condition("white", 0.0, "active").condition_id != Condition("white", 0.0, "energy").condition_id
    with pytest.raises(KeyError, match="unknown noise"):
        expand_conditions(ConditionsSpec(noises=["whte"]))


def _utts(root, n=2):
    df = select(read_manifest(root), "test", n)
    return [load_utterance(root, r) for r in df.to_dict("records")]


def _item_digest(root: str, utt_id: str, cond: Condition) -> str:
    """Mix in whatever process calls this; return a hash of every output byte."""
    df = read_manifest(root)
    utt = load_utterance(root, df[df["utt_id"] == utt_id].iloc[0])
    src = NOISES.get(cond.noise)(corpus_root=root)
    it = make_item(utt, cond, src)
    h = hashlib.sha256()
    for a in (it.mixture, it.clean, it.noise, it.lips, it.level):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_make_item_pure_and_deterministic_across_processes(tiny_corpus):
    from joblib import Parallel, delayed

    utts = _utts(tiny_corpus, 2)
    conds = [Condition("white", -5.0, corruption="occlusion@0.7"), Condition("babble", 5.0, "active", "blur@1+freeze@0.5")]
    tasks = [(str(tiny_corpus), u.utt_id, c) for c in conds for u in utts]
    serial = [_item_digest(*t) for t in tasks]
    parallel = Parallel(n_jobs=2, backend="loky")(delayed(_item_digest)(*t) for t in reversed(tasks))
    assert serial == list(reversed(parallel))
    assert len(set(serial)) == len(serial)


def test_item_contents(tiny_corpus):
    utt = _utts(tiny_corpus, 1)[0]
    cond = Condition("white", 0.0, corruption="occlusion@0.7", seed=1)
    it = make_item(utt, cond, NOISES.get("white")())
    np.testing.assert_array_equal(it.mixture, it.clean + it.noise)
    np.testing.assert_array_equal(it.clean, utt.audio)
    assert it.lips.shape == utt.lips.shape and it.level.shape == (len(utt.lips),)
    changed = np.any(it.lips != utt.lips, axis=(1, 2))
    np.testing.assert_array_equal(changed, it.level > 0)
    assert 0.25 <= changed.mean() <= 0.55
    # the same utterance gets the same noise at another SNR and the same video under another noise
    other = make_item(utt, Condition("white", 10.0, corruption="occlusion@0.7", seed=1), NOISES.get("white")())
    np.testing.assert_allclose(other.noise / np.linalg.norm(other.noise), it.noise / np.linalg.norm(it.noise), atol=1e-6)
    other = make_item(utt, Condition("pink", 0.0, corruption="occlusion@0.7", seed=1), NOISES.get("pink")())
    np.testing.assert_array_equal(other.lips, it.lips)


def test_build_mixtures_writes_files_and_table(tiny_corpus, tmp_path):
    cs = ConditionsSpec(split="test", n_utterances=2, noises=["white", "babble"], snrs_db=[-5.0, 5.0],
                        corruptions=["none", "occlusion@0.7"], snr_definition="energy")
    table = build_mixtures(cs, tiny_corpus, tmp_path, jobs=1, progress=False)
    assert list(table.columns) == MIX_COLUMNS and len(table) == 2 * 2 * 2 * 2
    again = pd.read_parquet(tmp_path / "mixtures.parquet")
    pd.testing.assert_frame_equal(table.reset_index(drop=True), again)
    assert (table["snr_measured_db"] - table["snr_db"]).abs().max() < 0.01
    assert (table.loc[table["corruption"] == "none", "corrupted_fraction"] == 0).all()
    assert (table.loc[table["corruption"] != "none", "corrupted_fraction"] > 0.25).all()
    row = table.iloc[-1]
    mixture = read_audio(tmp_path / row["mixture_path"], validate=False)
    clean = read_audio(tmp_path / row["clean_path"], validate=False)
    noise = read_audio(tmp_path / row["noise_path"], validate=False)
    np.testing.assert_array_equal(mixture, clean + noise)  # float WAV: bytes kept exactly
    lips = read_lips(tmp_path / row["lips_path"])
    level = np.load(tmp_path / row["corruption_path"])
    assert level.dtype == np.float32 and level.shape == (lips.shape[0],)
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes left no temp files


def test_write_item_row_matches_schema(tiny_corpus, tmp_path):
    utt = _utts(tiny_corpus, 1)[0]
    it = make_item(utt, Condition("white", 5.0, corruption="missing"), NOISES.get("white")())
    row = write_item(it, tmp_path)
    assert list(row) == MIX_COLUMNS
    assert row["corrupted_fraction"] == 1.0 and row["severity"] == 1.0
    assert row["mixture_path"].startswith("mixtures/white_snr5_missing-1/")


def test_babble_split_utterance_refused(tiny_corpus):
    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "babble"].iloc[0])
    with pytest.raises(ValueError, match="reserved for babble"):
        make_item(utt, Condition("white", 0.0), NOISES.get("white")())
