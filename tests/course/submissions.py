"""Submissions for the grader's tests: the solved kit and the acceptance's five planted bugs.

``solved/my_capstone.py`` is written independently of capstone's references; each bug is a
one-line edit of it (`BUGS`), made into its own folder by `submission`.
"""

from __future__ import annotations

from pathlib import Path

SOLVED = Path(__file__).parent / "solved"

#: bug -> (the task it breaks, the line of the solved kit, the line that replaces it)
BUGS = {
    "idf natural log": (
        "idf",
        "return {word: math.log10(len(captions) / n)",
        "return {word: math.log(len(captions) / n)",
    ),
    "embedding not normalized": (
        "image_embedding",
        "return y / mg.sqrt(mg.sum(y * y, axis=1, keepdims=True))",
        "return y",
    ),
    "margin sign flipped": (
        "train_step",
        "margin_ranking_loss(s_true, s_conf, 1, margin)",
        "margin_ranking_loss(s_true, s_conf, -1, margin)",
    ),
    "rank off by one": (
        "rank_of_true_image",
        "return 1 + np.sum(s > s[true_index])",
        "return np.sum(s > s[true_index])",
    ),
    "top-k ascending": (
        "top_k",
        'np.argsort(-np.asarray(scores), kind="stable")',
        'np.argsort(np.asarray(scores), kind="stable")',
    ),
}


def submission(folder: Path, bug: str | None = None, extra: str = "") -> Path:
    """A copy of the solved kit in ``folder`` (created), with ``bug`` planted and ``extra``
    source appended (a later definition replaces a solved one)."""
    folder.mkdir(parents=True)
    source = (SOLVED / "my_capstone.py").read_text()
    if bug is not None:
        _, old, new = BUGS[bug]
        assert source.count(old) == 1, old  # the bug is planted exactly once
        source = source.replace(old, new)
    (folder / "my_capstone.py").write_text(source + extra)
    return folder

