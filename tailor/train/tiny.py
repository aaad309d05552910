"""The offline base model: a tiny StarCoder-architecture model trained here, on the stdlib.

`build_tiny_base` trains a byte-level BPE tokenizer with StarCoder's special tokens, then
pre-trains a small GPTBigCode (multi-query attention) on the same code with the FIM
objective, and saves both with `save_pretrained` (safetensors). It is weak but real: the
quickstart and the tests fine-tune, evaluate and serve it with the code real checkpoints use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM, PreTrainedTokenizerFast

from tailor.fim import STARCODER
from tailor.train.corpus import code_files, read_text
from tailor.train.fim import encode_document, resolve_fim_tokens
from tailor.train.packing import batch_rows, pack

# Bump when the recipe below changes, so cached builds are rebuilt.
TINY_VERSION = 1
EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
CONTEXT = 512
_TRAIN_SEQ_LEN = 128
_TRAIN_BATCH = 4


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with StarCoder's special tokens (EOS is also BOS/UNK)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token="<fim_pad>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=CONTEXT,
        clean_up_tokenization_spaces=False,
    )


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The id of one token of the tokenizer's vocabulary."""
    return int(tokenizer.get_vocab()[token])


def tiny_config(vocab_size: int, eos_id: int, pad_id: int) -> GPTBigCodeConfig:
    """The tiny StarCoder-architecture config: 2 layers, 128 wide, multi-query attention."""
    return GPTBigCodeConfig(
        vocab_size=vocab_size,
        n_positions=CONTEXT,
        n_embd=128,
        n_layer=2,
        n_head=4,
        multi_query=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def _pretrain_batches(
    texts: list[str], tokenizer: PreTrainedTokenizerFast, seed: int
) -> Iterator[torch.Tensor]:
    """Endless FIM-transformed, packed batches over the corpus, reshuffled every pass."""
    backend = tokenizer.backend_tokenizer
    ids = resolve_fim_tokens(tokenizer.get_vocab(), STARCODER)
    eos = token_id(tokenizer, EOS)
    rng = random.Random(seed)

    def encode(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    while True:
        order = list(range(len(texts)))
        rng.shuffle(order)
        docs = (encode_document(texts[i], encode, ids, rng, 0.5, 0.5) for i in order)
        for rows in batch_rows(pack(docs, _TRAIN_SEQ_LEN, eos), _TRAIN_BATCH):
            yield torch.tensor(rows)


def pretrain(
    model: GPTBigCodeForCausalLM, batches: Iterator[torch.Tensor], steps: int
) -> list[float]:
    """A short AdamW run with warmup and cosine decay; returns the loss per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = max(1, steps // 10)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        batch = next(batches)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    # One thread makes CPU float reductions, and so the weights, identical on every machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_tiny_base(
    out_dir: Path,
    *,
    steps: int = 300,
    corpus_dir: Path | None = None,
    seed: int = 0,
    vocab_size: int = 4096,
) -> Path:
    """Train the tiny tokenizer and model on code and save both into out_dir; returns out_dir."""
    texts = [read_text(p) for p in code_files(corpus_dir)]
    if not texts:
        raise ValueError(f"no .py files of 1-40 kB under {corpus_dir}: nothing to train on")
    with _single_thread():
        torch.manual_seed(seed)
        tokenizer = train_tokenizer(texts, vocab_size)
        eos, pad = token_id(tokenizer, EOS), token_id(tokenizer, "<fim_pad>")
        model = GPTBigCodeForCausalLM(tiny_config(len(tokenizer), eos, pad))
        losses = pretrain(model, _pretrain_batches(texts, tokenizer, seed), steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    info: dict[str, object] = {
        "tiny_version": TINY_VERSION,
        "steps": steps,
        "seed": seed,
        "files": len(texts),
    }
    info |= {
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
    (out_dir / "tailor_tiny.json").write_text(json.dumps(info, indent=2))
    return out_dir


def tiny_cache_key(
    *, steps: int = 300, corpus_dir: Path | None = None, seed: int = 0, vocab_size: int = 4096
) -> str:
    """A key that changes whenever the build's inputs or recipe change."""
    import transformers

    parts = [TINY_VERSION, steps, str(corpus_dir or "stdlib"), seed, vocab_size]
    parts += [transformers.__version__, torch.__version__]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def tiny_base_cached(
    cache_root: Path,
    *,
    steps: int = 300,
    corpus_dir: Path | None = None,
    seed: int = 0,
    vocab_size: int = 4096,
) -> Path:
    """The tiny base under cache_root, built once per key (safe across concurrent processes)."""
    key = tiny_cache_key(steps=steps, corpus_dir=corpus_dir, seed=seed, vocab_size=vocab_size)
    target = cache_root / f"tiny-base-{key}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"tiny-base-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds it done
        if (target / "tailor_tiny.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-{key}-", dir=cache_root))
        try:
            build_tiny_base(
                tmp, steps=steps, corpus_dir=corpus_dir, seed=seed, vocab_size=vocab_size
            )
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
