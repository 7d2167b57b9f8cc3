"""The built-in synthetic AV corpus: TTS, visemes, lip rendering, manifest contract, determinism,
ensure_corpus reuse, the lip-information check and the `corpus` subcommand."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmark.audio_io import read_audio, read_lips
from benchmark.corpus.build import corpus_root, ensure_corpus, is_current, settings_hash
from benchmark.corpus.manifest import COLUMNS, SPLITS, read_manifest, read_sidecar
from benchmark.corpus.synthetic.lips import LipAppearance, LipRenderer
from benchmark.corpus.synthetic.visemes import (
    TARGETS, VISEMES, ArticulationStyle, articulation_trajectory, normalise_phone, phone_to_viseme,
    phones_to_visemes,
)
from benchmark.spec import CorpusSpec

MICRO = CorpusSpec(n_train_speakers=2, n_val_speakers=0, n_test_speakers=1, n_babble_speakers=0,
                   utts_per_speaker=2, lip_size=24, jobs=1, seed=3)


# ---------------------------------------------------------------- manifest contract (tiny corpus)

def test_tiny_corpus_manifest_contract(tiny_corpus):
    df = read_manifest(tiny_corpus)
    assert list(df.columns) == COLUMNS
    assert set(df["split"]) <= set(SPLITS)
    spk = {s: set(df.loc[df["split"] == s, "speaker"]) for s in ("train", "val", "test", "babble")}
    assert [len(spk[s]) for s in ("train", "val", "test", "babble")] == [4, 1, 2, 1]
    for a in spk:
        for b in spk:
            if a != b:
                assert not spk[a] & spk[b], f"speakers shared between {a} and {b}"
    assert (df.groupby("speaker").size() == 3).all()
    for _, r in df.iterrows():
        audio = read_audio(tiny_corpus / r["audio_path"])
        lips = read_lips(tiny_corpus / r["lips_path"])
        assert audio.size == r["n_samples"] and lips.shape == (r["n_frames"], 32, 32) and lips.dtype == np.uint8
        assert r["n_frames"] == round(r["duration_s"] * r["fps"])
        assert 1.5 <= r["duration_s"] <= 4.0 + 1e-6
        assert 0.2 < np.abs(audio).max() <= 0.9 + 1e-6
        # leading and trailing silence trimmed to roughly 100-200 ms
        env = np.abs(audio)
        first = np.argmax(env > 0.02 * env.max()) / 16000
        assert 0.05 < first < 0.3
        for col in ("phones", "visemes"):
            seg = json.loads(r[col])
            assert len(seg) >= 5
            starts, ends = np.array([s[0] for s in seg]), np.array([s[1] for s in seg])
            assert starts[0] == 0.0 and np.all(ends > starts) and np.all(np.diff(starts) > 0)
            assert ends[-1] <= r["duration_s"] + 1e-3
        assert {v for _, _, v in json.loads(r["visemes"])} <= set(VISEMES)
    side = read_sidecar(tiny_corpus)
    assert side["generator"] == "synthetic" and "SYNTHETIC" in side["note"] and side["settings_hash"]


def test_speakers_differ_in_voice_and_look(tiny_corpus):
    side = read_sidecar(tiny_corpus)
    voices = {(d["voice"], d["pitch"], d["rate"]) for d in side["speaker_details"].values()}
    assert len(voices) == len(side["speaker_details"])
    df = read_manifest(tiny_corpus)
    means = [read_lips(tiny_corpus / p).mean() for p in df.groupby("speaker").head(1)["lips_path"]]
    assert np.ptp(means) > 10  # skin/lip shades differ between speakers


# ---------------------------------------------------------------- determinism and reuse

def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = ensure_corpus(MICRO, tmp_path / "a", progress=False)
    b = ensure_corpus(MICRO, tmp_path / "b", progress=False)
    c = ensure_corpus(dataclasses.replace(MICRO, seed=4), tmp_path / "c", progress=False)
    assert read_sidecar(a)["checksum"] == read_sidecar(b)["checksum"]
    assert read_sidecar(a)["checksum"] != read_sidecar(c)["checksum"]
    assert read_manifest(a).equals(read_manifest(b))


@pytest.mark.slow
def test_parallel_build_gives_the_same_bytes(tmp_path):
    a = ensure_corpus(MICRO, tmp_path / "serial", progress=False)
    b = ensure_corpus(dataclasses.replace(MICRO, jobs=2), tmp_path / "parallel", progress=False)
    assert read_sidecar(a)["checksum"] == read_sidecar(b)["checksum"]


def test_ensure_corpus_reuses_then_rebuilds_on_changed_settings(tmp_path):
    root = ensure_corpus(MICRO, tmp_path / "c", progress=False)
    mtime = (root / "manifest.parquet").stat().st_mtime_ns
    assert ensure_corpus(dataclasses.replace(MICRO, jobs=2), root, progress=False) == root  # jobs: same content
    assert (root / "manifest.parquet").stat().st_mtime_ns == mtime
    changed = dataclasses.replace(MICRO, utts_per_speaker=1)
    assert not is_current(changed, root)
    ensure_corpus(changed, root, progress=False)
    assert len(read_manifest(root)) == 3 and is_current(changed, root)


def test_corpus_root_default_uses_settings_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("AVBENCH_DATA", str(tmp_path))
    r1, r2 = corpus_root(MICRO), corpus_root(dataclasses.replace(MICRO, seed=9))
    assert r1.parent == tmp_path / "corpus" and r1.name == f"synthetic-{settings_hash(MICRO)}" and r1 != r2
    assert corpus_root(dataclasses.replace(MICRO, root=str(tmp_path / "x"))) == tmp_path / "x"


def test_unknown_synthetic_option_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown key.*'colour'"):
        ensure_corpus(dataclasses.replace(MICRO, options={"colour": 1}), tmp_path / "bad", progress=False)


# ---------------------------------------------------------------- TTS and visemes

def test_espeak_gives_audio_and_phoneme_timings():
    from benchmark.corpus.synthetic.tts import TTSError, VoiceSettings, synthesize_isolated

    syn = synthesize_isolated("bin blue", VoiceSettings(voice="en-us+m3", rate=160), seed=1)
    assert syn.sample_rate == 22050 and 0.4 < syn.audio.size / syn.sample_rate < 2.0
    phones = [normalise_phone(p) for _, p in syn.phone_onsets]
    assert phones[:6] == ["b", "I", "n", "b", "l", "u:"]
    onsets = [t for t, _ in syn.phone_onsets]
    assert np.all(np.diff(onsets) >= 0)
    with pytest.raises(TTSError, match="unknown espeak-ng voice"):
        synthesize_isolated("hello", VoiceSettings(voice="no-such-voice"))
    again = synthesize_isolated("bin blue", VoiceSettings(voice="en-us+m3", rate=160), seed=1)
    assert np.array_equal(again.audio, syn.audio)  # a fresh library state for every call


def test_phone_to_viseme_map_and_diphthongs():
    assert normalise_phone("'aI2") == "aI" and normalise_phone("t#") == "t"
    assert [phone_to_viseme(p) for p in ("p", "m", "f", "D", "S", "'u:", "_:", "'A:", "i:")] == [
        "PBM", "PBM", "FV", "TH", "SH", "UW", "sil", "AA", "IY"]
    vis = phones_to_visemes([(0.0, 0.1, "_"), (0.1, 0.2, "b"), (0.2, 0.4, "'aI"), (0.4, 0.42, "_"), (0.42, 0.5, "m")])
    assert [v for _, _, v in vis] == ["sil", "PBM", "AA", "IY", "PBM"]  # diphthong split, 20 ms pause absorbed
    assert vis[2][1] == pytest.approx(0.3)


def test_trajectory_closes_for_bilabials_opens_for_vowels_and_leads_the_sound():
    vis = [(0.0, 0.3, "sil"), (0.3, 0.38, "PBM"), (0.38, 0.6, "AA"), (0.6, 0.68, "PBM"), (0.68, 1.0, "sil")]
    t = np.arange(0, 1.0, 0.005)
    style = ArticulationStyle(lead_s=0.06)
    tr = articulation_trajectory(vis, t, style)
    at = lambda x: tr["open"][np.argmin(np.abs(t - x))]  # noqa: E731
    assert at(0.34 - 0.06) < 0.15 and at(0.49 - 0.06) > 0.7 and at(0.9) < 0.15
    assert np.all(np.abs(np.diff(tr["open"])) < 0.15)  # smooth at 5 ms steps
    lag = t[np.argmax(tr["open"])] - 0.49  # peak opening precedes the vowel centre by about the lead
    assert -0.1 < lag < -0.02
    rounded = articulation_trajectory([(0.0, 0.5, "UW")], np.array([0.25]))
    spread = articulation_trajectory([(0.0, 0.5, "IY")], np.array([0.25]))
    assert rounded["round"][0] > 0.8 > spread["round"][0] and spread["width"][0] > rounded["width"][0]


def test_lip_rendering_follows_the_mouth_shape_and_is_antialiased():
    r = LipRenderer(64, LipAppearance())
    frames = {v: r.render_pose(*TARGETS[v]) for v in ("PBM", "AA", "UW", "IY")}
    dark = {v: float((f < 60).mean()) for v, f in frames.items()}
    assert dark["AA"] > 5 * max(dark["PBM"], 1e-3) and dark["AA"] > dark["UW"]
    assert (frames["IY"] > 200).mean() > (frames["PBM"] > 200).mean()  # teeth show for spread vowels
    traj = {p: np.full(10, v) for p, v in zip(("open", "width", "round", "teeth", "tongue"), TARGETS["AA"])}
    out = r.render(traj, np.arange(10) / 25, np.random.default_rng(0))
    assert out.shape == (10, 64, 64) and out.dtype == np.uint8
    assert len(np.unique(out[0])) > 60  # smooth shading, not a blocky mask


# ---------------------------------------------------------------- info check and CLI

def test_infocheck_on_held_out_speakers_beats_chance(tiny_corpus):
    from benchmark.corpus.infocheck import format_report, run_infocheck

    rep = run_infocheck(tiny_corpus)
    # tiny corpus (4 training speakers, ~600 frames): modest but clear margins
    assert rep.n_test_speakers == 2 and rep.n_test_frames > 200
    assert rep.viseme_accuracy > rep.viseme_chance + 0.05
    assert rep.viseme_top3_accuracy > 0.4
    assert rep.activity_balanced_accuracy > 0.6
    assert rep.openness_envelope_r > 0.2 and 0 <= rep.openness_best_lag_ms <= 160
    assert (tiny_corpus / "infocheck.json").exists() and "viseme class" in format_report(rep)


def test_infocheck_on_shuffled_lips_is_at_chance(tiny_corpus, tmp_path):
    """Control: with the lip files of the test split swapped between utterances, lips stop predicting visemes."""
    import shutil

    from benchmark.corpus.infocheck import run_infocheck

    root = tmp_path / "shuffled"
    shutil.copytree(tiny_corpus, root)
    df = read_manifest(root)
    test = df[df["split"] == "test"].sort_values("utt_id")
    # pair each test utterance's audio with another test utterance's lips, trimmed/padded to length
    lips = [read_lips(root / p) for p in test["lips_path"]]
    for k, (_, r) in enumerate(test.iterrows()):
        other = lips[(k + 1) % len(lips)]
        idx = np.clip(np.arange(r["n_frames"]), 0, len(other) - 1)
        np.save(root / r["lips_path"], other[idx])
    rep = run_infocheck(root, write=False)
    assert rep.viseme_accuracy < rep.viseme_chance + 0.05
    assert rep.openness_envelope_r_lag0 < 0.15


def test_cli_corpus_check_info_and_preview(tiny_corpus, tmp_path, capsys):
    from benchmark.cli import main

    assert main(["corpus", "info", "--root", str(tiny_corpus)]) == 0
    assert "babble" in capsys.readouterr().out
    dest = tmp_path / "preview"
    assert main(["corpus", "preview", "--root", str(tiny_corpus), "--dest", str(dest), "-n", "1"]) == 0
    assert (dest / "contact_sheet.png").stat().st_size > 1000
    assert (dest / "preview.mp4").stat().st_size > 1000 and (dest / "preview.wav").exists()
    assert main(["corpus", "check", "--root", str(tmp_path / "missing")]) == 1


def test_tiny_spec_points_at_the_tiny_corpus_and_is_reused(tiny_spec, tiny_corpus):
    assert tiny_spec.corpus.root == str(tiny_corpus) and is_current(tiny_spec.corpus, tiny_corpus)
    mtime = (tiny_corpus / "manifest.parquet").stat().st_mtime_ns
    assert ensure_corpus(tiny_spec.corpus, progress=False) == tiny_corpus
    assert (tiny_corpus / "manifest.parquet").stat().st_mtime_ns == mtime
