"""Fill-in-the-middle prompts built with the model's own FIM tokens (for every backend).

The prompt is built as token ids exactly as training lays out a PSM example:
`<pre> prefix <suf> suffix <mid>`, each piece encoded on its own, so a completion
request sees the same token boundaries the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable

from tailor.fim import FimNames, FimTokens


def fim_prompt_ids(
    prefix: str,
    suffix: str,
    tokens: FimTokens,
    encode: Callable[[str], list[int]],
    leading: list[int] | None = None,
) -> list[int]:
    """Token ids of a PSM FIM prompt; `leading` are the tokenizer's own start tokens (BOS)."""
    return [
        *(leading or []),
        tokens.prefix_id,
        *encode(prefix),
        tokens.suffix_id,
        *encode(suffix),
        tokens.middle_id,
    ]


def fim_prompt_text(prefix: str, suffix: str, style: FimNames) -> str:
    """The same PSM prompt as text (what llm-vscode sends in TGI's `inputs`)."""
    return f"{style.prefix}{prefix}{style.suffix}{suffix}{style.middle}"


def split_fim_text(inputs: str, style: FimNames) -> tuple[str, str] | None:
    """(prefix, suffix) of a PSM prompt given as text, or None when `inputs` is not one."""
    if not inputs.startswith(style.prefix) or not inputs.endswith(style.middle):
        return None
    body = inputs[len(style.prefix) : len(inputs) - len(style.middle)]
    if body.count(style.suffix) != 1:
        return None
    prefix, suffix = body.split(style.suffix)
    return prefix, suffix
