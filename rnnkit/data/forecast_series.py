"""Time series for forecasting: bundled series (statsmodels, aeon), checked CSV reading, and
the season length detected from the autocorrelation."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Series", "BUNDLED", "load_series", "read_series_csv", "detect_season",
           "is_bundled"]

# name -> (package, what it holds); loaded from the installed package, never copied here.
BUNDLED: dict[str, str] = {
    "statsmodels:sunspots": "yearly sunspot numbers 1700-2008 (309 points)",
    "statsmodels:co2": "Mauna Loa CO2 ppm, weekly readings averaged per month, gaps "
                       "interpolated (1958-03 .. 2001-12, 526 points)",
    "statsmodels:nile": "yearly Nile flow at Aswan 1871-1970 (100 points)",
    "aeon:airline": "monthly airline passengers 1949-1960 (144 points)",
}


@dataclass
class Series:
    """A univariate target with optional covariates: `values` (N,), `covariates` (N, C)."""

    name: str
    column: str
    values: np.ndarray
    covariates: np.ndarray
    covariate_names: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


def is_bundled(data: str) -> bool:
    """Whether `data` names a bundled series ("statsmodels:sunspots", ...) rather than a file."""
    return data in BUNDLED or data.split(":", 1)[0] in ("statsmodels", "aeon")


def _bundled_frame(name: str):  # -> (pandas.DataFrame, default column)
    if name not in BUNDLED:
        raise ValueError(f"data {name!r} is not a bundled series; expected one of "
                         f"{sorted(BUNDLED)} or a CSV file")
    if name.startswith("statsmodels:"):
        try:
            import statsmodels.datasets as sd
        except ImportError as err:
            raise ImportError(f"data {name!r} needs statsmodels (pip install "
                              f"'rnnkit[all]')") from err
        if name == "statsmodels:sunspots":
            df = sd.sunspots.load_pandas().data
            df["date"] = df["YEAR"].astype(int).astype(str)
            return df[["date", "SUNACTIVITY"]], "SUNACTIVITY"
        if name == "statsmodels:nile":
            df = sd.nile.load_pandas().data
            df["date"] = df["year"].astype(int).astype(str)
            return df[["date", "volume"]], "volume"
        weekly = sd.co2.load_pandas().data  # weekly, with gaps (NaN)
        monthly = weekly.resample("MS").mean().interpolate()
        monthly["date"] = monthly.index.strftime("%Y-%m")
        return monthly.reset_index(drop=True)[["date", "co2"]], "co2"
    try:
        from aeon.datasets import load_airline
    except ImportError as err:
        raise ImportError(f"data {name!r} needs aeon (pip install 'rnnkit[all]')") from err
    import pandas as pd

    try:  # aeon >= 1.0 returns an array unless asked for the dated series
        s = load_airline(return_array=False)
    except TypeError:
        s = load_airline()

    df = pd.DataFrame({"date": [str(p) for p in s.index], "passengers": s.to_numpy(float)})
    return df, "passengers"


def load_series(data: str, column: str = "", covariates: list[str] | None = None,
                date_column: str = "") -> Series:
    """The series `data` names: a bundled one (see BUNDLED; `column` defaults to its only
    column) or a CSV file (see `read_series_csv`)."""
    covariates = list(covariates or [])
    if not is_bundled(data):
        return read_series_csv(data, column, covariates, date_column)
    df, default = _bundled_frame(data)
    column = column or default
    for name in [column, *covariates]:
        if name not in df.columns or name == "date":
            raise ValueError(f"column {name!r} is not in {data!r}; its columns: {[default]}")
    return Series(data, column, df[column].to_numpy(np.float64),
                  df[covariates].to_numpy(np.float64).reshape(len(df), len(covariates)),
                  covariates, [str(d) for d in df["date"]])


def _number(text: str, path: str, row: int, name: str) -> float:
    t = text.strip()
    if t == "" or t.lower() in ("na", "nan", "null", "none", "n/a"):
        raise ValueError(f"{path}: row {row}: column {name!r} is missing ({text!r}); fill or "
                         f"drop the row (missing values are not imputed)")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{path}: row {row}: column {name!r} holds {text!r}, expected a "
                         f"number") from None
    if not math.isfinite(v):
        raise ValueError(f"{path}: row {row}: column {name!r} holds {text!r}, expected a "
                         f"finite number")
    return v


def read_series_csv(path: str | Path, column: str, covariates: list[str] | None = None,
                    date_column: str = "") -> Series:
    """A CSV file with a header row: the numeric `column` is the target, `covariates` are
    numeric columns read beside it, `date_column` (optional) labels the steps. Rows are in
    time order. A missing or non-numeric value in a used column raises ValueError naming
    the row (row 1 is the header, so the first value is row 2, as a spreadsheet counts)."""
    covariates = list(covariates or [])
    p = Path(path)
    if not column:
        raise ValueError(f"column is required for the CSV file {str(p)!r} (--column NAME)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{str(p)!r} is not UTF-8 text: {err}") from err
    rows = list(csv.reader(text.splitlines()))
    if not rows or not rows[0]:
        raise ValueError(f"{str(p)!r} is empty; expected a CSV file with a header row")
    header = [h.strip() for h in rows[0]]
    wanted = [column, *covariates] + ([date_column] if date_column else [])
    for name in wanted:
        if name not in header:
            raise ValueError(f"column {name!r} is not in the header of {str(p)!r}; its "
                             f"columns: {header}")
    idx = {name: header.index(name) for name in wanted}
    values, cov, dates = [], [], []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # blank line
        if len(row) != len(header):
            raise ValueError(f"{str(p)}: row {i} has {len(row)} fields, the header has "
                             f"{len(header)}")
        values.append(_number(row[idx[column]], str(p), i, column))
        cov.append([_number(row[idx[c]], str(p), i, c) for c in covariates])
        if date_column:
            dates.append(row[idx[date_column]].strip())
    if len(values) < 3:
        raise ValueError(f"{str(p)!r} holds {len(values)} data rows; a series needs at "
                         f"least 3")
    return Series(str(p), column, np.asarray(values, np.float64),
                  np.asarray(cov, np.float64).reshape(len(values), len(covariates)),
                  covariates, dates)


def detect_season(values: np.ndarray, max_lag: int | None = None,
                  threshold: float = 0.3) -> int:
    """The season length m of a series: the lag (>= 2) of the highest local peak of the
    autocorrelation of its first differences (differencing removes a trend, whose slowly
    decaying autocorrelation would hide the peak), if that peak exceeds `threshold`;
    otherwise 1 (no season: seasonal naive is then persistence). Lags up to `max_lag`
    (default N // 3)."""
    x = np.diff(np.asarray(values, np.float64))
    n = len(x)
    max_lag = min(max_lag or n // 3, n - 2)
    x = x - x.mean()
    denom = float((x * x).sum())
    if max_lag < 3 or denom == 0.0:
        return 1
    acf = np.array([float((x[:n - k] * x[k:]).sum()) / denom for k in range(max_lag + 2)])
    peaks = [k for k in range(2, max_lag + 1) if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1]]
    if not peaks:
        return 1
    best = max(peaks, key=lambda k: acf[k])
    return best if acf[best] > threshold else 1
