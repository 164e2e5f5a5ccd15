"""CSV cells: a formula's first character is defused, other text is kept as it is."""

import pytest

from capstone.common.spreadsheet import spreadsheet_text


@pytest.mark.parametrize(
    ("text", "cell"),
    [("=HYPERLINK(1)", "'=HYPERLINK(1)"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("a dog", "a dog"), ("", "")],
)  # fmt: skip
def test_spreadsheet_text_defuses_formulas(text, cell):
    assert spreadsheet_text(text) == cell
