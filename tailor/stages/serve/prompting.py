"""Turning requests into token ids and post-processing options, from the model's tokenizer."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.fim import FimError, FimStyle, FimTokens, detect_fim, fim_layout
from tailor.stages.context.render import as_comment
from tailor.stages.context.snippets import ContextFile
from tailor.stages.serve.fim import fim_prompt_ids, split_fim_text
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.postprocess import PostprocessOptions

# Snippet texts whose token count is kept: a team's definitions recur from request to request,
# and counting them is most of retrieval's time.
COUNT_CACHE = 16_384


class PromptTooLongError(ValueError):
    """The prompt and the tokens asked for do not fit in the model's context."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, context_length: int) -> None:
        self.prompt_tokens, self.max_new_tokens = prompt_tokens, max_new_tokens
        self.context_length = context_length
        super().__init__(
            f"this model's maximum context length is {context_length} tokens, but "
            f"{prompt_tokens + max_new_tokens} were requested ({prompt_tokens} in the prompt, "
            f"{max_new_tokens} for the completion); shorten the prompt or lower max_tokens"
        )


@dataclass(frozen=True)
class ChatPrompt:
    """A rendered chat conversation and the stops its format needs."""

    text: str
    stop: tuple[str, ...] = ()


class Prompter:
    """Everything a backend needs from the tokenizer: FIM ids, chat rendering, counting."""

    def __init__(
        self, tokenizer: Any, context_length: int, fim_style: FimStyle | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.fim: FimTokens | None = detect_fim(tokenizer.get_vocab(), fim_style)
        self.leading: list[int] = list(tokenizer("", add_special_tokens=True)["input_ids"])
        self.special_ids: frozenset[int] = frozenset(tokenizer.all_special_ids)
        eos = tokenizer.eos_token
        self.forbidden_texts: tuple[str, ...] = (
            *(self.fim.texts if self.fim else ()),
            *((eos,) if eos else ()),
        )
        self._count: Callable[[str], int] = functools.lru_cache(maxsize=COUNT_CACHE)(
            self._count_uncached
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, without the tokenizer's start tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids; special tokens never appear in it."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The ids the model sees: a FIM prompt (the family's order) when `suffix` is set.

        Repository context goes in the family's repository-level layout for a FIM prompt when
        the family has one, else as comments before the prompt.
        """
        if request.suffix is not None and self.fim is None:
            raise FimError("this model has no fill-in-the-middle tokens; send no `suffix`")
        if request.context and self.repo_layout(request):
            return self._repo_prompt_ids(request)
        prompt = "".join(as_comment(f, request.path) for f in request.context) + request.prompt
        if request.suffix is None:
            return [*self.leading, *self.encode(prompt)]
        assert self.fim is not None
        return fim_prompt_ids(prompt, request.suffix, self.fim, self.encode, self.leading)

    def repo_layout(self, request: GenerationRequest) -> bool:
        """True when the request's context goes in the family's repository-level layout."""
        return request.suffix is not None and self.fim is not None and bool(self.fim.repo_layout)

    def context_costs(
        self, snippets: Sequence[ContextFile], request: GenerationRequest
    ) -> list[int]:
        """The tokens each snippet adds to the request's prompt, placed as `prompt_ids` places
        it (each text's count is cached)."""
        if self.repo_layout(request):
            texts = [self._file_text(s) for s in snippets]
            extra = 1  # its file separator
        else:
            texts = [as_comment(s, request.path) for s in snippets]
            extra = 0
        return [extra + self._count(text) for text in texts]

    def _count_uncached(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _file_text(self, snippet: ContextFile) -> str:
        nl = "\n" if self.fim is not None and self.fim.repo_layout == "qwen" else ""
        return f"{snippet.path}\n{snippet.body}{nl}"

    def _repo_prompt_ids(self, request: GenerationRequest) -> list[int]:
        """As `tailor.stages.train.repo_level.encode_repo` lays out a training example: the
        repository's name, each snippet as a file behind a separator, then the edited file."""
        fim = self.fim
        assert fim is not None and request.suffix is not None
        assert fim.repo_name_id is not None and fim.file_sep_id is not None
        qwen = fim.repo_layout == "qwen"
        repo = request.context[0].repo + ("\n" if qwen else "")
        ids = [*self.leading, fim.repo_name_id, *self.encode(repo)]
        for snippet in request.context:
            ids += [fim.file_sep_id, *self.encode(self._file_text(snippet))]
        ids.append(fim.file_sep_id)
        head = f"{request.path}\n" if request.path else ""
        if qwen:  # the path stands before the FIM tokens
            ids += self.encode(head)
            head = ""
        # StarCoder2 writes the path inside the prefix, after <fim_prefix>.
        prefix, suffix = self.encode(head + request.prompt), self.encode(request.suffix)
        return ids + fim_layout(fim, prefix, suffix)

    def split_fim(self, text: str) -> tuple[str, str | None]:
        """(prefix, suffix) of a prompt written in this model's FIM tokens (what llm-ls sends),
        else (text, None)."""
        parts = split_fim_text(text, self.fim.style) if self.fim else None
        return parts if parts is not None else (text, None)

    def check_fits(self, request: GenerationRequest) -> list[int]:
        """The prompt's ids, or PromptTooLongError with the numbers."""
        ids = self.prompt_ids(request)
        if len(ids) + request.max_new_tokens > self.context_length:
            raise PromptTooLongError(len(ids), request.max_new_tokens, self.context_length)
        return ids

    def options(self, request: GenerationRequest) -> PostprocessOptions:
        """Post-processing for one request: its stops, its line/block mode, the FIM context."""
        fim = request.suffix is not None
        block = request.stop_at_block_end if request.stop_at_block_end is not None else fim
        return PostprocessOptions(
            stop=tuple(s for s in request.stop if s),
            single_line=request.single_line,
            stop_at_block_end=block,
            line_prefix=request.prompt.rsplit("\n", 1)[-1],
            suffix=request.suffix,
            forbidden=self.forbidden_texts,
        )

    def chat(self, messages: list[dict[str, str]]) -> ChatPrompt:
        """The tokenizer's chat template when it has one, else a plain role-prefixed transcript."""
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return ChatPrompt(str(text))
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return ChatPrompt("\n".join([*lines, "Assistant:"]), stop=("\nUser:", "\nSystem:"))
