"""Notebooks: code cells only; anything malformed is a clear NotebookError."""

from __future__ import annotations

import json

import pytest

from tailor.stages.harvest.notebooks import NotebookError, code_cells


def test_code_cells_are_joined_and_prose_and_outputs_left_out() -> None:
    nb = {
        "nbformat": 4,
        "cells": [
            {"cell_type": "markdown", "source": "# Title"},
            {"cell_type": "code", "source": ["a = 1\n", "b = 2"], "outputs": [{"text": "OUT"}]},
            {"cell_type": "code", "source": "   "},
            {"cell_type": "code", "source": "print(a + b)"},
        ],
    }
    assert code_cells(json.dumps(nb)) == "a = 1\nb = 2\n\n\nprint(a + b)\n"


def test_nbformat_3_worksheets_are_read() -> None:
    nb = {"worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1"]}]}]}
    assert code_cells(json.dumps(nb)) == "x = 1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"metadata": {}}', "no 'cells' list"),
        ('{"cells": [{"cell_type": "code", "source": 5}]}', "cell 0"),
    ],
)
def test_malformed_notebooks_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        code_cells(text)
