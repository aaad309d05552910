"""Fill-in-the-middle prompts built with the model's own FIM tokens (for every backend).

The prompt is built as token ids exactly as training lays out an example in the family's
order (`tailor.fim.fim_layout`: `<pre> prefix <suf> suffix <mid>`, or Mistral's
`[SUFFIX] suffix [PREFIX] prefix`), each piece encoded on its own, so a completion
request sees the same token boundaries the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable

from tailor.fim import FimNames, FimTokens, fim_layout


def fim_prompt_ids(
    prefix: str,
    suffix: str,
    tokens: FimTokens,
    encode: Callable[[str], list[int]],
    leading: list[int] | None = None,
) -> list[int]:
    """Token ids of a FIM prompt; `leading` are the tokenizer's own start tokens (BOS)."""
    return [*(leading or []), *fim_layout(tokens, encode(prefix), encode(suffix))]


def _suffix_first(style: FimNames) -> bool:
    return getattr(style, "order", "psm") == "suffix_first"


def fim_prompt_text(prefix: str, suffix: str, style: FimNames) -> str:
    """The same prompt as text (what llm-vscode sends in TGI's `inputs`)."""
    if _suffix_first(style):
        return f"{style.suffix}{suffix}{style.prefix}{prefix}"
    return f"{style.prefix}{prefix}{style.suffix}{suffix}{style.middle}"


def split_fim_text(inputs: str, style: FimNames) -> tuple[str, str] | None:
    """(prefix, suffix) of a FIM prompt given as text, or None when `inputs` is not one."""
    first, second = (
        (style.suffix, style.prefix)
        if _suffix_first(style)
        else (
            style.prefix,
            style.suffix,
        )
    )
    end = "" if _suffix_first(style) else style.middle
    if not inputs.startswith(first) or not inputs.endswith(end):
        return None
    body = inputs[len(first) : len(inputs) - len(end)]
    if body.count(second) != 1:
        return None
    one, two = body.split(second)
    return (two, one) if _suffix_first(style) else (one, two)
