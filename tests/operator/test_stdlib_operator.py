"""The folder `operator/` never shadows the standard library's `operator` module."""

from __future__ import annotations

import subprocess
import sys

from tests.operator.conftest import ROOT

CHECK = "import operator; operator.itemgetter; print(operator.__file__)"


def test_python_started_in_the_repository_root_gets_the_stdlib_operator() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert "site-packages" not in result.stdout
    assert not result.stdout.startswith(str(ROOT))


def test_the_root_on_sys_path_still_gets_the_stdlib_operator() -> None:
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); {CHECK}"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True
    )

    assert not result.stdout.startswith(str(ROOT))


def test_the_operator_package_imports_under_its_own_name() -> None:
    code = "import tailor_operator.main, operator; operator.attrgetter('x')"

    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}"},
        check=True,
    )
