"""End to end: a fake run folder -> write_report / the `report` subcommand -> files + HTML in Chromium."""
from __future__ import annotations

import re

import pytest

from benchmark.audio_io import DataError
from benchmark.report.api import write_report
from benchmark.report.synthetic_run import FakeRunSpec, write_fake_run
from benchmark.spec import ReportSpec

from browser_helpers import chromium_or_skip, run_chromium


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    run = write_fake_run(base / "runs" / "fake", FakeRunSpec(n_utts=2, snrs_db=[-5.0, 5.0], duration_s=1.0,
                                                              corruptions=["none", "occlusion@1.0"]))
    spec = ReportSpec(bootstrap=100, n_examples=1, figure_formats=["png"], metrics=["si_sdr"])
    index = write_report(run, base / "reports" / "fake", spec, progress=False)
    return run, index


def test_report_writes_all_parts(report):
    run, index = report
    out = index.parent
    html = index.read_text()
    for name in ("si_sdr", "delta_si_sdr", "si_sdr_noise-white", "reliability", "efficiency"):
        for ext in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{ext}").exists(), f"{name}.{ext}"
    assert not (out / "tables" / "stoi.md").exists()  # report.metrics restricts the tables
    assert (out / "tables" / "paired_tests.csv").exists() and (out / "tables" / "summary_stats.csv").exists()
    # one training run: no seed-spread table or strip plot; the achieved precision is always there
    assert not (out / "tables" / "seed_spread.md").exists() and "Spread between training seeds" not in html
    assert (out / "tables" / "achieved_precision.md").exists() and "Achieved precision" in html
    assert "1 training seed" in html
    figs = {p.name for p in (out / "figures").glob("*.png")}
    for f in ("delta_si_sdr_vs_snr.png", "robustness_delta_si_sdr.png", "visual_weight_distributions.png",
              "reliability_vs_robustness.png", "quality_vs_compute.png"):
        assert f in figs
    assert any(f.startswith("weights_example_") for f in figs) and any(f.startswith("spectrograms_") for f in figs)
    # self-contained: embedded images and audio, nothing fetched from elsewhere
    assert html.count("data:image/png;base64,") >= 6
    assert html.count('<audio controls') >= 3 and "data:audio/wav;base64," in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for system in ("av-vae/gated", "mixture-vae", "a-vae", "oracle-wiener"):
        assert system in html
    assert "FAKE" in html and "1 failed" in html
    summary = (out / "summary.md").read_text()
    assert "| av-vae/modality-attention |" in summary and "Reliability-weight diagnostics" in summary
    rel = (out / "tables" / "reliability.csv").read_text()
    assert "mixture-vae" in rel and "av-vae/concat" in rel  # concat: the drop only, no weights


def test_report_subcommand_and_bad_input(tmp_path, report):
    from benchmark.cli import main

    run, _ = report
    with pytest.raises(SystemExit, match="results.parquet"):
        main(["report", str(tmp_path), "--out", str(tmp_path / "r")])
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "nope", tmp_path / "r")


@pytest.mark.browser
def test_html_renders_in_headless_chromium(report, tmp_path):
    binary = chromium_or_skip()
    _, index = report
    url = index.resolve().as_uri()
    dom = run_chromium(binary, url, tmp_path / "profile", "--dump-dom", "--enable-logging=stderr", "--v=0")
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'<div id="js-status"([^>]*)>([^<]*)<', dom.stdout)
    assert m, "status element missing from the rendered DOM"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
    print("js-status:", attrs, m.group(2))
    assert attrs.get("data-errors") == "0", m.group(2)
    assert attrs.get("data-ready") == "1"
    assert int(attrs["data-images"]) >= 6 and attrs["data-images-ok"] == attrs["data-images"]
    assert int(attrs["data-audio"]) >= 3
    console_errors = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln and ("rror" in ln or "Uncaught" in ln)]
    assert not console_errors, console_errors
    shot = tmp_path / "report.png"
    r = run_chromium(binary, url, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2000")
    assert r.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000
    print("screenshot:", shot)


def test_spectrogram_figure_keeps_baselines_and_references_first():
    """A study has ~20 systems; the example's spectrogram figure shows at most
    MAX_SPECTROGRAM_SYSTEMS of them: baselines and reference systems first, in table order."""
    import pandas as pd

    from benchmark.report.api import spectrogram_systems

    systems = ["oracle-wiener", "a-vae · ldem", "av-vae/concat · ldem"] + [f"av-vae/f{i} · ldem" for i in range(8)] + \
        ["av-vae/video-off · ldem"]
    df = pd.DataFrame({"system": systems,
                       "model_id": [""] + [s.split(" · ")[0] for s in systems[1:]],
                       "model": [""] + [s.split("/")[0].split(" · ")[0] for s in systems[1:]]})
    refs = ["model=a-vae", "model_id=av-vae/video-off"]
    shown = spectrogram_systems(systems, df, refs, limit=5)
    assert shown == ["oracle-wiener", "a-vae · ldem", "av-vae/concat · ldem", "av-vae/f0 · ldem",
                     "av-vae/video-off · ldem"]
    assert spectrogram_systems(systems, df, refs, limit=50) == systems
    assert spectrogram_systems(systems[:3], df, [], limit=2) == ["oracle-wiener", "a-vae · ldem"]


def test_a_new_report_removes_the_previous_reports_files(report, tmp_path):
    """Writing a report into a folder that holds an earlier one removes what the earlier one wrote
    (listed in its manifest) and keeps files it did not write."""
    from benchmark.report.api import MANIFEST

    run, index = report
    out = tmp_path / "rep"
    spec = ReportSpec(bootstrap=50, n_examples=0, figure_formats=["png"], metrics=["si_sdr"])
    write_report(run, out, spec, progress=False)
    listed = (out / MANIFEST).read_text().split()
    assert "index.html" in listed and "summary.md" in listed and any(f.startswith("tables/") for f in listed)
    stale = out / "tables" / "noise_model_check.md"  # as if an earlier report had an analysis
    stale.write_text("old\n")
    (out / MANIFEST).write_text((out / MANIFEST).read_text() + "tables/noise_model_check.md\n")
    mine = out / "tables" / "my_notes.md"
    mine.write_text("keep\n")
    other = out / "notes.txt"  # outside the report's files: never listed, even when written meanwhile
    other.write_text("keep\n")
    write_report(run, out, spec, progress=False)
    assert not stale.exists() and mine.exists()
    assert "noise_model_check" not in (out / "summary.md").read_text()
    listed = (out / MANIFEST).read_text().split()
    assert "tables/noise_model_check.md" not in listed and "tables/my_notes.md" not in listed
    assert "notes.txt" not in listed
    write_report(run, out, spec, progress=False)
    assert mine.exists() and other.exists()
    # a file written next to the report while it runs is not the report's: never listed
    from benchmark.report.api import _file_stamps, write_manifest

    before = _file_stamps(out)
    (out / "tables" / "new_table.md").write_text("x\n")
    other.write_text("changed meanwhile\n")
    listed = write_manifest(out, before).read_text().split()
    assert listed == ["tables/new_table.md"]
