"""Reference comparison: our numbers beside published figures that the user supplies in YAML.

Schema (see ``reference_example.yaml``)::

    format_example: false        # true marks a file of placeholders (the report says so)
    tables:
      - title: "SI-SDR vs published"          # optional
        source: "Author et al., Venue Year, Table N"   # citation of the published numbers
        corpus: "NTCD-TIMIT"                  # the data the published numbers come from
        metric: si_sdr                        # our results column to compare with
        match_on: snr_db                      # optional, the column of the value keys (default snr_db)
        filter: {noise: babble}               # optional: restrict our rows (column: value)
        entries:
          - label: "A-VAE, MCEM"              # the published row
            match: {model_id: a-vae}          # our rows to put beside it (column: value, all must hold)
            values: {-5: 1.23, 0: 4.56}       # published value per SNR; null = not reported

Numbers come only from the user's file; nothing here is a published figure. When our corpus
is the built-in synthetic one, the table is labelled as coming from different data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmark.configtools import ConfigError


def load_reference(path: str | Path) -> dict[str, Any]:
    """Read and validate a reference YAML; :class:`ConfigError` names the file and the key."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: reference file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise ConfigError(f"{p}: expected a mapping with a 'tables' list")
    for i, t in enumerate(data["tables"]):
        where = f"{p}: tables[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(f"{where}: expected a mapping")
        for k in ("source", "metric", "entries"):
            if k not in t:
                raise ConfigError(f"{where}: missing key {k!r}")
        if not isinstance(t["entries"], list):
            raise ConfigError(f"{where}.entries: expected a list")
        for j, e in enumerate(t["entries"]):
            if not isinstance(e, dict) or "label" not in e or not isinstance(e.get("values"), dict):
                raise ConfigError(f"{where}.entries[{j}]: needs 'label' and a 'values' mapping")
            for k, v in e["values"].items():
                if v is not None and not isinstance(v, (int, float)):
                    raise ConfigError(f"{where}.entries[{j}].values[{k}]: expected a number or null, got {v!r}")
            if "match" in e and not isinstance(e["match"], dict):
                raise ConfigError(f"{where}.entries[{j}].match: expected a mapping column: value")
    return data


def _key(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def comparison_tables(ref: dict[str, Any], results: pd.DataFrame, *, corpus_name: str,
                      synthetic: bool) -> list[tuple[str, pd.DataFrame, str]]:
    """``(title, table, note)`` per reference table: rows alternate published / ours."""
    out = []
    for t in ref["tables"]:
        metric = t["metric"]
        col = t.get("match_on", "snr_db")
        res = results
        for k, v in (t.get("filter") or {}).items():
            if k in res:
                res = res[res[k].astype(str) == str(v)]
        keys = []
        for e in t["entries"]:
            for k in e["values"]:
                if _key(k) not in keys:
                    keys.append(_key(k))
        rows = []
        for e in t["entries"]:
            pub = {_key(k): (float(v) if v is not None else np.nan) for k, v in e["values"].items()}
            rows.append({"row": f"{e['label']} (published)", "data": t.get("corpus", "?"), **{k: pub.get(k, np.nan) for k in keys}})
            sel = res
            ok = True
            for k, v in (e.get("match") or {}).items():
                if k not in sel:
                    ok = False
                    break
                sel = sel[sel[k].astype(str) == str(v)]
            ours = {}
            if ok and metric in sel and col in sel and not sel.empty:
                g = sel.assign(_k=sel[col].map(_key)).groupby("_k")[metric].apply(lambda s: pd.to_numeric(s, errors="coerce").mean())
                ours = g.to_dict()
            label = ", ".join(f"{k}={v}" for k, v in (e.get("match") or {}).items()) or "(all rows)"
            rows.append({"row": f"ours: {label}", "data": corpus_name + (" (synthetic)" if synthetic else ""),
                         **{k: ours.get(k, np.nan) for k in keys}})
        df = pd.DataFrame(rows)
        df = df.rename(columns={k: (f"{k} dB" if col == "snr_db" else k) for k in keys})
        notes = [f"Published figures from: {t['source']}, transcribed by the user."]
        if ref.get("format_example"):
            notes.insert(0, "FORMAT EXAMPLE: the reference file is marked format_example: true; its values are "
                            "placeholders, not published figures.")
        if synthetic:
            notes.append("DIFFERENT DATA: our numbers come from the built-in synthetic corpus, the published ones from "
                         f"{t.get('corpus', 'another corpus')}; they are not directly comparable.")
        out.append((t.get("title") or f"{metric}: ours vs {t['source']}", df, " ".join(notes)))
    return out
