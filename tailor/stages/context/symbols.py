"""Definitions in a file: their names, where they are, and what a caller needs to use them.

Python goes through `ast` (exact signatures and docstrings, no new dependency); other languages
through one regex per family of declaration keywords, which finds the declaration line and the
comment above it. A syntax error in a Python file falls back to the regexes, so a file being
edited still yields its definitions.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

MAX_SIGNATURE_LINES = 8  # a signature longer than this is cut (decorators and arguments)
MAX_DOC_LINES = 6  # the docstring's first lines say what a definition is for
MAX_CLASS_MEMBERS = 12  # a class shows this many method signatures under its header


@dataclass(frozen=True)
class Symbol:
    """One definition: its name, its lines in the file and the text shown for it."""

    name: str
    kind: str  # "function", "class", "method" or "definition" (other languages)
    line: int  # 1-based line of the definition
    text: str  # signature and docstring (Python), or the declaration with its comment


def extract(path: str, content: str) -> list[Symbol]:
    """The definitions of one file, in file order."""
    if path.endswith((".py", ".pyi")):
        try:
            return _python(content)
        except (SyntaxError, ValueError, RecursionError):
            pass  # unparsable: the regexes still find the definitions
    return _by_regex(content)


def _signature(lines: list[str], node: ast.AST) -> list[str]:
    """The lines from the first decorator to the header's colon."""
    start = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno])  # type: ignore[attr-defined]
    body = getattr(node, "body", [])
    end = body[0].lineno - 1 if body else node.lineno  # type: ignore[attr-defined]
    header = lines[start - 1 : max(end, node.lineno)]  # type: ignore[attr-defined]
    # A one-line body (`def f(): return 1`) sits on the header line: keep only up to the colon.
    return header[:MAX_SIGNATURE_LINES]


def _docstring(node: ast.AST, indent: str) -> list[str]:
    doc = ast.get_docstring(node, clean=True)  # type: ignore[arg-type]
    if not doc:
        return []
    shown = doc.splitlines()[:MAX_DOC_LINES]
    quoted = ['"""' + shown[0], *shown[1:]]
    quoted[-1] += '"""'
    return [f"{indent}{line}" if line else "" for line in quoted]


def _function_text(lines: list[str], node: ast.AST) -> list[str]:
    sig = _signature(lines, node)
    indent = re.match(r"\s*", sig[-1]).group(0) + "    "  # type: ignore[union-attr]
    return [*sig, *_docstring(node, indent), f"{indent}..."]


def _class_text(lines: list[str], node: ast.ClassDef) -> list[str]:
    sig = _signature(lines, node)
    indent = re.match(r"\s*", sig[-1]).group(0) + "    "  # type: ignore[union-attr]
    out = [*sig, *_docstring(node, indent)]
    members = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    fields = [n for n in node.body if isinstance(n, ast.AnnAssign | ast.Assign)]
    out += [lines[f.lineno - 1] for f in fields[:MAX_CLASS_MEMBERS]]
    for member in members[:MAX_CLASS_MEMBERS]:
        out += _signature(lines, member)
    return out if len(out) > len(sig) else [*out, f"{indent}..."]


def _python(content: str) -> list[Symbol]:
    tree = ast.parse(content)
    lines = content.splitlines()
    found: list[Symbol] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            text = "\n".join(_function_text(lines, node))
            found.append(Symbol(node.name, "function", node.lineno, text))
        elif isinstance(node, ast.ClassDef):
            text = "\n".join(_class_text(lines, node))
            found.append(Symbol(node.name, "class", node.lineno, text))
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    text = "\n".join(_function_text(lines, member))
                    found.append(Symbol(member.name, "method", member.lineno, text))
    return found


# Declarations of the common C-family, Go, Rust, Ruby, JavaScript/TypeScript, Kotlin and Swift
# files: a keyword, then the name.
_DECLARATION = re.compile(
    r"^[ \t]*(?:export\s+)?(?:default\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:public\s+|private\s+|"
    r"protected\s+|static\s+|abstract\s+|final\s+|async\s+|inline\s+|override\s+|open\s+)*"
    r"(?:function\*?|func|fn|def|class|struct|interface|trait|enum|type|impl|module|object|"
    r"fun|record|protocol)\s+([A-Za-z_$][\w$]*)",
    re.MULTILINE,
)
_COMMENT = re.compile(r"^\s*(//|#|\*|/\*|--|;)")


def _by_regex(content: str) -> list[Symbol]:
    lines = content.splitlines()
    found = []
    for match in _DECLARATION.finditer(content):
        at = content.count("\n", 0, match.start())  # 0-based index of the declaration line
        top = at
        while top > 0 and at - top < MAX_DOC_LINES and _COMMENT.match(lines[top - 1]):
            top -= 1  # the comment right above documents the declaration
        line = at + 1
        text = "\n".join(lines[top : at + 1])
        found.append(Symbol(match.group(1), "definition", line, text))
    return found
