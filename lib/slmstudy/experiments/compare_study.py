"""Two whole studies side by side: every notebook both have, compared as ``compare`` compares
two runs. A re-run of the study is only judged a reproduction notebook by notebook; one
refused pair (an incomplete run, a missing folder) is said and the others still compared.

A study is named as a folder whose subfolders are run folders named after their notebooks
(``outputs/reference/h100``, or any folder of run folders named by notebook), or ``run:*``: the
folders the notebooks' current parameters map to with this profile (what ``make study``
just produced)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..params import show
from .compare import (COMPARABLE, Comparison, CompareError, _resolve, compare_folders, folder_of, sentence, summary,
                      write)

EVERY_RUN = "run:*"


@dataclass
class StudyComparison:
    comparisons: list[Comparison]
    refused: dict[str, str] = field(default_factory=dict)  # notebook -> why it was not compared
    single: bool = False  # two run folders, not two studies

    def summary(self) -> pd.DataFrame:
        """One row per notebook: the two folders, devices, whether comparable, the counts."""
        refused = pd.DataFrame([{"notebook": nb, "comparable": False, "differing parameters": f"not compared: {why}"}
                                for nb, why in self.refused.items()])
        return pd.concat([*(summary(c) for c in self.comparisons), refused], ignore_index=True)

    def verdicts(self) -> str:
        """Markdown: each notebook's verdict sentence and the notes that go with it."""
        parts = []
        for c in self.comparisons:
            head = "" if self.single else f"**{c.notebook}** ({' vs '.join(x[:7] for x in c.commits)}): "
            parts.append(head + sentence(c) + "".join(f"\n* {note}" for note in c.notes))
        parts += [f"**{nb}**: not compared: {why}" for nb, why in self.refused.items()]
        return "\n\n".join(parts)

    def figure_name(self, c: Comparison) -> str:
        return "compare_throughput" if self.single else f"compare_throughput_{c.notebook}"


def is_run_folder(path: Path) -> bool:
    return (path / "params.yaml").is_file()


def is_study(spec: str) -> bool:
    """A study (several notebooks' runs) rather than one run folder."""
    if spec == EVERY_RUN:
        return True
    path = _resolve(spec)
    return path.is_dir() and not is_run_folder(path)


def _folders(spec: str, profile: str) -> dict[str, Path]:
    """Each comparable notebook's run folder in a study, where it has one."""
    if spec == EVERY_RUN:
        out = {}
        for nb in COMPARABLE:
            folder = folder_of(f"run:{nb}", profile)
            if folder.is_dir():
                out[nb] = folder
        return out
    root = _resolve(spec)
    if not root.is_dir():
        raise CompareError(f"{show(root)} does not exist")
    return {nb: root / nb for nb in COMPARABLE if is_run_folder(root / nb)}


def compare_studies(a: str, b: str, profile: str = "auto", vary: Sequence[str] = ()) -> StudyComparison:
    """Every notebook both studies ran, compared; CompareError when they share none."""
    fa, fb = _folders(a, profile), _folders(b, profile)
    shared = [nb for nb in COMPARABLE if nb in fa and nb in fb]
    if not shared:
        raise CompareError(f"{a} ({', '.join(fa) or 'no runs'}) and {b} ({', '.join(fb) or 'no runs'}) share no "
                           f"notebook's run; compare takes runs of {', '.join(COMPARABLE)}")
    out = StudyComparison([])
    for nb in shared:
        try:
            out.comparisons.append(compare_folders(fa[nb], fb[nb], vary))
        except CompareError as exc:
            out.refused[nb] = str(exc)
    for nb in COMPARABLE:
        if nb not in shared and (nb in fa or nb in fb):
            out.refused[nb] = f"only {'A' if nb in fa else 'B'} has a run of it"
    return out


def comparisons(a: str, b: str, profile: str = "auto", vary: Sequence[str] = ()) -> StudyComparison:
    """Two studies when both name one, else the two runs (a study beside a run folder is
    compared as a run, which refuses it: one clear line)."""
    if is_study(a) and is_study(b):
        return compare_studies(a, b, profile, vary)
    return StudyComparison([compare_folders(folder_of(a, profile), folder_of(b, profile), vary)], single=True)


def write_all(s: StudyComparison, folder: Path) -> None:
    """One comparison's files in ``folder`` (as ``compare`` writes them), a study's in
    ``folder/<notebook>/`` each."""
    for c in s.comparisons:
        write(c, folder if s.single else folder / c.notebook)
