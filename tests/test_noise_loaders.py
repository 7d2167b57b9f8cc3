"""Noise-dataset loaders (DEMAND, NTCD-TIMIT noises, MUSAN, generic folder) on fixture trees."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from benchmark.audio_io import DataError
from noise_sets import NOISES
from noise_sets.builtin import NoiseError
from noise_sets.loaders import DEMAND_ENVIRONMENTS, NTCD_NOISE_TYPES, FileNoise
from fixtures_real import make_noise_wav


def _find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Offset of ``needle`` inside ``haystack`` (exact float match), -1 if absent."""
    n = needle.size
    cands = np.flatnonzero(haystack[: haystack.size - n + 1] == needle[0])
    for c in cands:
        if np.array_equal(haystack[c:c + n], needle):
            return int(c)
    return -1


@pytest.fixture()
def demand(tmp_path):
    for i, env in enumerate(("DKITCHEN", "NPARK")):
        make_noise_wav(tmp_path / "DEMAND" / env / "ch01.wav", duration_s=4.0, seed=i)
    return tmp_path / "DEMAND"


def test_all_loader_names_registered():
    names = set(NOISES.names())
    assert {"demand", "ntcd-noise", "musan", "noise-folder"} <= names
    assert {f"demand-{e}" for e in DEMAND_ENVIRONMENTS} <= names
    assert {f"ntcd-{t}" for t in NTCD_NOISE_TYPES} <= names
    assert "DEMAND" in NOISES.doc("demand-DKITCHEN")


def test_demand_segments_are_deterministic_and_split_disjoint(demand):
    src = NOISES.get("demand-DKITCHEN")(corpus_root=None, root=str(demand))
    full, sr = sf.read(str(demand / "DKITCHEN" / "ch01.wav"), dtype="float32")
    assert sr == 16000
    cut = int(full.size * 0.5)
    a = src.segment(8000, seed=7)
    assert a.dtype == np.float32 and a.size == 8000
    assert np.array_equal(a, src.segment(8000, seed=7))
    assert not np.array_equal(a, src.segment(8000, seed=8))
    for seed in range(6):
        off = _find(full, src.segment(8000, seed=seed, split="test"))
        assert off >= cut and off + 8000 <= full.size
        off = _find(full, src.segment(8000, seed=seed, split="train"))
        assert 0 <= off and off + 8000 <= cut
    # the same seed in another split draws from another stream
    assert not np.array_equal(src.segment(8000, 3, "test"), src.segment(8000, 3, "val"))
    # the generic name with an environment option reads the same file
    same = NOISES.get("demand")(root=str(demand), environment="dkitchen")
    assert np.array_equal(same.files, src.files)


def test_demand_errors(demand, tmp_path):
    with pytest.raises(DataError, match="DEMAND environment folder not found.*DKITCHEN, NPARK"):
        NOISES.get("demand-TBUS")(root=str(demand))
    with pytest.raises(DataError, match="noise folder for 'demand-TBUS' not found"):
        NOISES.get("demand-TBUS")(root=str(tmp_path / "nowhere"))
    with pytest.raises(NoiseError, match=r"noise_options\.demand-DKITCHEN\.root"):
        NOISES.get("demand-DKITCHEN")()
    with pytest.raises(NoiseError, match="environment"):
        NOISES.get("demand")(root=str(demand))
    with pytest.raises(NoiseError, match=r"unknown key 'conditions\.noise_options\.demand-DKITCHEN\.colour'"):
        NOISES.get("demand-DKITCHEN")(root=str(demand), colour="red")
    # the name fixes the environment: it is not an option of demand-DKITCHEN
    with pytest.raises(NoiseError, match=r"demand-DKITCHEN\.environment.*accepted: allow_downmix, channel, root"):
        NOISES.get("demand-DKITCHEN")(root=str(demand), environment="NPARK")


@pytest.mark.parametrize("name, options, text", [
    ("demand", {"environment": "DKITCHN"}, r"demand\.environment': 'DKITCHN' is not one of .*did you mean 'DKITCHEN'"),
    ("demand-NPARK", {"train_fraction": 1.0}, r"demand-NPARK\.train_fraction': must be in \(0, 1\)"),
    ("demand-NPARK", {"train_fraction": "half"}, r"demand-NPARK\.train_fraction': expected a number, got str"),
    ("noise-folder", {"recursive": "yes"}, r"noise-folder\.recursive': expected true/false"),
    ("ntcd-noise", {"noise_type": "Cafeteria"}, r"ntcd-noise\.noise_type': 'Cafeteria' is not one of"),
    ("musan", {"subset": "speech"}, r"musan\.subset': must be one of \['all', 'free-sound', 'sound-bible'\]"),
    ("noise-folder", {"roots": "/x"}, r"unknown key 'conditions\.noise_options\.noise-folder\.roots'; did you mean 'root'"),
])
def test_loader_options_are_declared_and_checked_by_the_factory(demand, name, options, text):
    """Each loader declares its options (a dataclass) and checks them before it looks at the disk;
    the error is both a NoiseError and a ConfigError naming the full key."""
    from benchmark.configtools import ConfigError
    from noise_sets.base import NoiseFactory

    factory = NOISES.get(name)
    assert isinstance(factory, NoiseFactory) and "root" in factory.accepted()
    with pytest.raises(NoiseError, match=text) as ei:
        factory(root=str(demand), **options)
    assert isinstance(ei.value, ConfigError)


def test_loader_check_data_names_root_and_layout(demand, tmp_path):
    """The load-time check lists the files (no audio read): a missing root or a wrong layout is a
    ConfigError naming the key, the path and the expected layout."""
    from benchmark.configtools import ConfigError

    f = NOISES.get("demand-DKITCHEN")
    assert f.check({"root": str(demand)}).root == str(demand)
    with pytest.raises(ConfigError, match=r"preset\.yaml: key 'conditions\.noise_options\.demand-DKITCHEN\.root': "
                       r".*nowhere: noise folder for 'demand-DKITCHEN' not found \(expected layout: <root>/<ENV>/ch01\.wav"):
        f.check({"root": str(tmp_path / "nowhere")}, source="preset.yaml")
    with pytest.raises(ConfigError, match=r"NTCD-TIMIT noise type not found"):
        NOISES.get("ntcd-Car").check({"root": str(demand)})


def test_noise_registry_rejects_a_plain_function(tmp_path, monkeypatch):
    """NOISES is declared with base=NoiseFactory: a module registering a bare function is a
    TypeError naming that module (and the registry is left as it was)."""
    (tmp_path / "plain_noise_mod.py").write_text(
        "from noise_sets import NOISES\nNOISES.register('plain-noise', lambda corpus_root=None, **o: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match=r"noise 'plain-noise' registered in module 'plain_noise_mod' is 'function', "
                       r"not a NoiseFactory"):
        import plain_noise_mod  # noqa: F401
    assert "plain-noise" not in NOISES.names()


def test_ntcd_noise_file_or_folder_case_insensitive(tmp_path):
    make_noise_wav(tmp_path / "ntcd" / "LR.wav", seed=1)
    make_noise_wav(tmp_path / "ntcd" / "babble" / "part1.wav", seed=2)
    make_noise_wav(tmp_path / "ntcd" / "babble" / "part2.wav", seed=3)
    lr = NOISES.get("ntcd-LR")(root=str(tmp_path / "ntcd"))
    assert [p.name for p in lr.files] == ["LR.wav"] and lr.name == "ntcd-LR"
    bab = NOISES.get("ntcd-noise")(root=str(tmp_path / "ntcd"), noise_type="Babble")
    assert [p.name for p in bab.files] == ["part1.wav", "part2.wav"]
    assert bab.segment(4000, 0).size == 4000
    with pytest.raises(DataError, match="NTCD-TIMIT noise type not found"):
        NOISES.get("ntcd-Car")(root=str(tmp_path / "ntcd"))


def test_musan_layout_and_subsets(tmp_path):
    m = tmp_path / "musan"
    make_noise_wav(m / "noise" / "free-sound" / "noise-free-sound-0000.wav", seed=1)
    make_noise_wav(m / "noise" / "sound-bible" / "noise-sound-bible-0000.wav", seed=2)
    assert len(NOISES.get("musan")(root=str(m)).files) == 2
    assert len(NOISES.get("musan")(root=str(m / "noise"), subset="sound-bible").files) == 1
    with pytest.raises(NoiseError, match="subset"):
        NOISES.get("musan")(root=str(m), subset="speech")
    with pytest.raises(DataError, match="no MUSAN noise wav files"):
        NOISES.get("musan")(root=str(tmp_path))


def test_folder_resamples_and_returns_short_regions_whole(tmp_path):
    make_noise_wav(tmp_path / "f" / "a" / "x48k.wav", duration_s=2.0, sr=48000, seed=4)
    src = NOISES.get("noise-folder")(root=str(tmp_path / "f"))
    seg = src.segment(8000, seed=1)
    assert seg.size == 8000 and np.isfinite(seg).all() and seg.std() > 0.01
    # only 1 s per region: asking for 3 s gives the whole 1 s test region (the mixer loops or refuses)
    short = src.segment(48000, seed=1)
    assert abs(short.size - 16000) <= 2
    with pytest.raises(DataError, match="no \\*.wav files"):
        NOISES.get("noise-folder")(root=str(tmp_path / "f"), recursive=False)


def test_stereo_noise_needs_downmix_and_corrupt_file_is_named(tmp_path):
    make_noise_wav(tmp_path / "st" / "two.wav", channels=2)
    with pytest.raises(DataError, match=r"two\.wav: noise file has 2 channels"):
        NOISES.get("noise-folder")(root=str(tmp_path / "st"))
    src = NOISES.get("noise-folder")(root=str(tmp_path / "st"), allow_downmix=True)
    assert src.segment(1000, 0).shape == (1000,)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.wav").write_bytes(b"RIFFxxxxWAVEnot really")
    with pytest.raises(DataError, match=r"broken\.wav: cannot read audio header"):
        NOISES.get("noise-folder")(root=str(tmp_path / "bad"))


def test_file_noise_validates_train_fraction(tmp_path):
    f = make_noise_wav(tmp_path / "n.wav")
    with pytest.raises(NoiseError, match="train_fraction"):
        FileNoise(files=[f], name="x", train_fraction=1.0)
    src = FileNoise(files=[f], name="x", train_fraction=0.25)
    assert src.region_s(0, "test") == (1.0, 4.0) and src.region_s(0, "train") == (0.0, 1.0)
