"""Condition filters: a part of the condition grid, named by its axes.

A filter is a mapping with any of the keys ``noises``, ``snrs_db`` and ``corruptions``, each a
list of values of that axis of the grid (``conditions.noises`` / ``snrs_db`` / ``corruptions``);
a condition matches when its value is listed on every axis the filter names (an axis it does not
name is not restricted). Two settings use them:

* ``conditions.exclude``: a list of filters; a condition matching any of them is left out of the
  grid (e.g. ``[{snrs_db: [0.0], corruptions: [bursty@0.5]}]`` drops the bursty video at 0 dB);
* ``enhance.subsets``: keyed by an algorithm (or baseline) name or a model entry's label, the
  conditions that algorithm or system is run on (e.g. ``{mcem: {snrs_db: [-5.0], corruptions:
  [none]}}``: MCEM on the headline cell only, every other algorithm on the whole grid). A model
  label's filter may also name ``algorithms`` (a sub-list of ``enhance.algorithms``).

Pure functions; :func:`check_filter` raises :class:`~benchmark.configtools.ConfigError` naming
the key and the value that is not in the grid.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from benchmark.configtools import ConfigError, did_you_mean

#: filter key -> the ``conditions`` field it restricts
AXES = {"noises": "noises", "snrs_db": "snrs_db", "corruptions": "corruptions"}


def _canonical(corruption: str) -> str:
    from benchmark.conditions.corruptions import canonical

    return canonical(str(corruption))


def check_filter(filt: Any, grid: Any, key: str, source: str, extra: Mapping[str, Iterable[str]] | None = None) -> None:
    """Validate one filter against the grid ``grid`` (a ``ConditionsSpec``): a mapping whose keys
    are axes (or a key of ``extra``, whose values must be in ``extra[k]``), each a non-empty list of
    values the grid has. Errors name ``source`` and ``key``."""
    extra = dict(extra or {})
    allowed = list(AXES) + list(extra)
    if not isinstance(filt, Mapping) or not filt:
        raise ConfigError(f"{source}: key '{key}': expected a mapping of {', '.join(allowed)} to lists, got {filt!r}")
    for axis, values in filt.items():
        if axis not in allowed:
            raise ConfigError(f"{source}: unknown key '{key}.{axis}'{did_you_mean(str(axis), allowed)} "
                              f"(a condition filter names {', '.join(allowed)})")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: key '{key}.{axis}': expected a non-empty list, got {values!r}")
        if axis in extra:
            known = [str(v) for v in extra[axis]]
            have = [str(v) for v in values]
        elif axis == "snrs_db":
            known = [float(v) for v in grid.snrs_db]
            try:
                have = [float(v) for v in values]
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: key '{key}.snrs_db': expected numbers, got {values!r}") from None
        elif axis == "corruptions":
            known = [_canonical(c) for c in grid.corruptions]
            have = [_canonical(v) for v in values]
        else:
            known = [str(v) for v in getattr(grid, AXES[axis])]
            have = [str(v) for v in values]
        for v, shown in zip(have, values):
            if v not in known:
                where = f"enhance.{axis}" if axis in extra else f"conditions.{AXES[axis]}"
                raise ConfigError(f"{source}: key '{key}.{axis}': {shown!r} is not in {where} "
                                  f"{known}")


def matches(filt: Mapping[str, Any] | None, noise: str, snr_db: float, corruption: str) -> bool:
    """Whether the condition (noise, SNR, canonical corruption) passes ``filt`` (None: every
    condition does). Keys other than the axes (e.g. ``algorithms``) are ignored here."""
    if not filt:
        return True
    if "noises" in filt and str(noise) not in {str(v) for v in filt["noises"]}:
        return False
    if "snrs_db" in filt and float(snr_db) not in {float(v) for v in filt["snrs_db"]}:
        return False
    if "corruptions" in filt and _canonical(corruption) not in {_canonical(v) for v in filt["corruptions"]}:
        return False
    return True


def excluded(filters: Iterable[Mapping[str, Any]], noise: str, snr_db: float, corruption: str) -> bool:
    """Whether any of ``filters`` (``conditions.exclude``) matches the condition."""
    return any(matches(f, noise, snr_db, corruption) for f in filters)


__all__ = ["AXES", "check_filter", "matches", "excluded"]
