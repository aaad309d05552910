"""The FIM token styles Tailor knows, one table for training and serving.

Training lays out examples with these tokens and serving builds prompts with them, so a
model family added here is understood the same way by both (no torch import: the API
and the serving front end use it too). Token texts are those of each family's published
tokenizer; the order is PSM except Mistral's (Codestral), whose `encode_fim` writes
`[SUFFIX] suffix [PREFIX] prefix` and lets the model continue with the middle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

FimOrder = Literal["psm", "suffix_first"]
# How a family's pre-training laid out several files of one repository (None: it did not):
#   starcoder2: <repo_name>repo<file_sep>path\ncode<file_sep><fim_prefix>path\nprefix...
#   qwen:       <|repo_name|>repo\n<|file_sep|>path\ncode\n<|file_sep|>path\n<|fim_prefix|>...
RepoLayout = Literal["starcoder2", "qwen"]


class FimNames(Protocol):
    """Anything naming the three FIM tokens by text (a style, or a spec's `fim_tokens`)."""

    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...
    @property
    def middle(self) -> str: ...


@dataclass(frozen=True)
class FimStyle:
    """The texts and order of a model family's FIM tokens, and its repository-level tokens."""

    name: str
    prefix: str
    suffix: str
    middle: str
    extra: tuple[str, ...] = ()  # other specials that must never reach a client
    order: FimOrder = "psm"
    file_sep: str | None = None  # opens each file of a repository-level example
    repo_name: str | None = None  # opens the repository's name
    repo_layout: RepoLayout | None = None

    @property
    def repo_tokens(self) -> tuple[str, ...]:
        """The repository-level tokens this family's tokenizer has."""
        return tuple(t for t in (self.repo_name, self.file_sep) if t is not None)


STARCODER = FimStyle(
    "starcoder",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    ("<fim_pad>",),
    file_sep="<filename>",
    repo_name="<reponame>",
)
STARCODER2 = FimStyle(
    "starcoder2",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    ("<fim_pad>",),
    file_sep="<file_sep>",
    repo_name="<repo_name>",
    repo_layout="starcoder2",
)
CODELLAMA = FimStyle("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", ("▁<EOT>",))
QWEN_CODER = FimStyle(
    "qwen2.5-coder",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    ("<|fim_pad|>",),
    file_sep="<|file_sep|>",
    repo_name="<|repo_name|>",
    repo_layout="qwen",
)
# DeepSeek's bars are FULLWIDTH VERTICAL LINE (U+FF5C), as in its tokenizer.json.
DEEPSEEK_CODER = FimStyle(
    "deepseek-coder",
    "<\uff5cfim\u2581begin\uff5c>",
    "<\uff5cfim\u2581hole\uff5c>",
    "<\uff5cfim\u2581end\uff5c>",
)
CODESTRAL = FimStyle("codestral", "[PREFIX]", "[SUFFIX]", "[MIDDLE]", order="suffix_first")
CODEGEMMA = FimStyle(
    "codegemma", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", file_sep="<|file_separator|>"
)
# Order breaks ties: a vocabulary with only <fim_*> is StarCoder's, with only <|fim_*|> Qwen's.
KNOWN_STYLES: tuple[FimStyle, ...] = (
    STARCODER,
    CODELLAMA,
    STARCODER2,
    QWEN_CODER,
    DEEPSEEK_CODER,
    CODESTRAL,
    CODEGEMMA,
)


def style_for_model(model: str) -> FimStyle | None:
    """The known style whose family a model id names (`Qwen/Qwen2.5-Coder-1.5B` -> Qwen's),
    for servers that take text, not a tokenizer; the longest family name wins (StarCoder2
    over StarCoder). None when no family is named."""
    name = model.rsplit("/", 1)[-1].lower()
    named = [s for s in KNOWN_STYLES if s.name in name]
    return max(named, key=lambda s: len(s.name)) if named else None


def fim_prompt(style: FimStyle, prefix: str, suffix: str) -> str:
    """The FIM prompt text for `prefix` and `suffix` in the style's order (the model writes
    the middle next)."""
    if style.order == "suffix_first":
        return f"{style.suffix}{suffix}{style.prefix}{prefix}"
    return f"{style.prefix}{prefix}{style.suffix}{suffix}{style.middle}"


class FimError(ValueError):
    """The tokenizer lacks the FIM tokens asked for, or a sequence is not a FIM example."""


@dataclass(frozen=True)
class FimTokens:
    """A FIM style resolved against one vocabulary."""

    style: FimNames
    prefix_id: int
    suffix_id: int
    middle_id: int
    file_sep_id: int | None = None
    repo_name_id: int | None = None

    @property
    def order(self) -> FimOrder:
        """PSM, or Mistral's suffix-first layout."""
        return getattr(self.style, "order", "psm")

    @property
    def repo_layout(self) -> RepoLayout | None:
        """The family's repository-level layout, when its vocabulary has the tokens for it."""
        if self.file_sep_id is None or self.repo_name_id is None:
            return None
        return getattr(self.style, "repo_layout", None)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every FIM and repository token text (to strip from output and to stop on)."""
        s = self.style
        return (s.prefix, s.suffix, s.middle, *getattr(s, "extra", ()), *repo_tokens(s))


def repo_tokens(names: FimNames) -> tuple[str, ...]:
    """The repository-level tokens of a style (none for bare token names)."""
    return names.repo_tokens if isinstance(names, FimStyle) else ()


def fim_layout(
    tokens: FimTokens,
    prefix: Sequence[int],
    suffix: Sequence[int],
    middle: Sequence[int] = (),
    spm: bool = False,
) -> list[int]:
    """Ids of a FIM sequence in the style's order; with an empty middle, the prompt to serve.

    `spm` asks for StarCoder's SPM variant (`<pre><suf> suffix <mid> prefix middle`);
    Mistral's layout is already suffix-first and has only that one.
    """
    t = tokens
    if t.order == "suffix_first":
        return [t.suffix_id, *suffix, t.prefix_id, *prefix, *middle]
    if spm:
        return [t.prefix_id, t.suffix_id, *suffix, t.middle_id, *prefix, *middle]
    return [t.prefix_id, *prefix, t.suffix_id, *suffix, t.middle_id, *middle]


def _has(vocab: dict[str, int], style: FimNames) -> bool:
    return all(t in vocab for t in (style.prefix, style.suffix, style.middle))


def _resolve(vocab: dict[str, int], style: FimNames) -> FimTokens:
    sep, repo = (getattr(style, a, None) for a in ("file_sep", "repo_name"))
    return FimTokens(
        style,
        vocab[style.prefix],
        vocab[style.suffix],
        vocab[style.middle],
        vocab.get(sep) if sep else None,
        vocab.get(repo) if repo else None,
    )


def _texts(names: FimNames) -> tuple[str, str, str]:
    return (names.prefix, names.suffix, names.middle)


def _known(names: FimNames) -> FimStyle | None:
    """The first known style with exactly these three token texts."""
    return next((s for s in KNOWN_STYLES if _texts(s) == _texts(names)), None)


def _best(vocab: dict[str, int]) -> FimStyle | None:
    """The known style whose FIM tokens and the most repository tokens the vocabulary has."""
    found = [s for s in KNOWN_STYLES if _has(vocab, s)]
    if not found:
        return None
    # Qwen2.5-Coder and CodeGemma share FIM texts; their file separators tell them apart.
    return max(found, key=lambda s: sum(t in vocab for t in s.repo_tokens))


def detect_fim(vocab: dict[str, int], names: FimNames | None = None) -> FimTokens | None:
    """The named style (or the known one) the vocabulary has; None if it has none.

    Asking for a style the vocabulary lacks is an error (FimError), not a quiet None.
    """
    if names is None:
        best = _best(vocab)
        return _resolve(vocab, best) if best is not None else None
    if not _has(vocab, names):
        raise FimError(f"the tokenizer has no {names.prefix}/{names.suffix}/{names.middle} tokens")
    known = _known(names)
    if known is not None and not isinstance(names, FimStyle):
        # Token names from a spec that match a family: take the family's order and repo tokens.
        best = _best(vocab)
        names = best if best is not None and _texts(best) == _texts(names) else known
    return _resolve(vocab, names)


def require_fim(vocab: dict[str, int], names: FimNames | None = None) -> FimTokens:
    """The named style (or the known one) the vocabulary has; FimError if none."""
    found = detect_fim(vocab, names)
    if found is None:
        wanted = ", ".join(f"{s.prefix}/{s.suffix}/{s.middle}" for s in KNOWN_STYLES)
        raise FimError(f"the tokenizer has no FIM tokens ({wanted})")
    return found
