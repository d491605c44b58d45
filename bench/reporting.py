"""Helpers the benchmark scripts share: Markdown tables and report files."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    "`df` as a Markdown table."
    df = df.reset_index() if index else df
    rows = [[str(v) for v in row] for row in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns),
                      *["| " + " | ".join(r) + " |" for r in rows]])


def write_report(path: Path, parts: list[str]) -> None:
    "Write the report's `parts` (Markdown blocks) to `path`, and print all but the last (the per-run table)."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")
    print("\n\n".join(parts[:-1]))
    print(f"wrote {path}")
