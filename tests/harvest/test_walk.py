"""The walk: which files are candidates, decided from names, globs and links alone."""

from __future__ import annotations

import os
from pathlib import Path

from tailor.harvest.spec import FilterConfig
from tailor.harvest.walk import path_selected, walk_tree


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_only_allowlisted_languages_outside_skipped_dirs_are_candidates(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "app/main.py": "x = 1\n",
            "app/ui.tsx": "export {}\n",
            "Dockerfile": "FROM scratch\n",
            "notes.txt": "hello\n",
            "node_modules/a/index.js": "1\n",
            "build/gen.py": "1\n",
            "yarn.lock": "a\n",
            "empty.py": "",
        },
    )
    result = walk_tree(root, repo="r", filters=FilterConfig())
    assert [(c.path, c.language) for c in result.files] == [
        ("Dockerfile", "Dockerfile"),
        ("app/main.py", "Python"),
        ("app/ui.tsx", "TypeScript"),
    ]
    assert result.skipped == {"language": 1, "lock_file": 1, "empty": 1}
    assert result.dirs_skipped == 2


def test_include_and_exclude_globs_choose_paths() -> None:
    assert path_selected("src/a/b.py", ["src/**"], [])
    assert not path_selected("tests/test_b.py", ["src/**"], [])
    assert not path_selected("src/a/b_test.py", [], ["*_test.py"])
    assert path_selected("src/a/b.py", [], ["docs/"])
    assert not path_selected("docs/x/y.md", [], ["docs/"])


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = make(tmp_path / "outside", {"secret.py": "KEY = 1\n"})
    root = make(tmp_path / "repo", {"real.py": "x = 1\n"})
    os.symlink(outside / "secret.py", root / "leak.py")
    os.symlink("real.py", root / "alias.py")
    os.symlink(outside, root / "linked_dir")
    result = walk_tree(root, repo="r", filters=FilterConfig())
    assert [c.path for c in result.files] == ["real.py"]
    # linked_dir is never entered (a name without an allowlisted extension is not even looked at).
    assert result.skipped == {"symlink_outside": 1, "symlink": 1, "language": 1}


def test_files_over_the_size_limit_are_skipped_unread(tmp_path: Path) -> None:
    root = make(tmp_path, {"big.py": "x = 1\n" * 100, "small.py": "y = 2\n"})
    result = walk_tree(root, repo="r", filters=FilterConfig(max_file_bytes=100))
    assert [c.path for c in result.files] == ["small.py"]
    assert result.skipped_bytes["too_large"] == 600


def test_an_incremental_walk_looks_at_the_changed_paths_only(tmp_path: Path) -> None:
    root = make(tmp_path, {"a.py": "a = 1\n", "b.py": "b = 1\n", "vendor/c.py": "c = 1\n"})
    only = ["b.py", "vendor/c.py", "deleted.py", "../escape.py"]
    result = walk_tree(root, repo="r", filters=FilterConfig(), only=only)
    assert [c.path for c in result.files] == ["b.py"]
    assert result.skipped == {"invalid_path": 1}
