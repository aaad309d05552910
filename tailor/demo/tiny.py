"""The offline base models: small StarCoder-architecture models trained here, on code.

`build_tiny_base` trains a byte-level BPE tokenizer with StarCoder's special tokens, then
pre-trains a small GPTBigCode (multi-query attention) on code with the FIM objective, and
saves both with `save_pretrained` (safetensors). Two recipes: TINY (2 layers, 300 steps on
200 stdlib files) proves plumbing in seconds; CODE (4 layers, 256 wide, 3,000 steps on the
stdlib and site-packages) knows enough Python that a team adapter's gain is large and robust.
Both are loaded by the code real checkpoints use (`from_pretrained` on a directory).
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
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM, PreTrainedTokenizerFast

from tailor.demo.stdlib_corpus import broad_code_files, code_files, corpus_digest, read_text
from tailor.fim import STARCODER
from tailor.stages.train.fim import encode_document, resolve_fim_tokens
from tailor.stages.train.packing import batch_rows, pack

# Bump when the recipe code below changes, so cached builds are rebuilt.
TINY_VERSION = 2
EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
CONTEXT = 512


@dataclass(frozen=True)
class BaseRecipe:
    """How a stand-in base is built: its size, its corpus and its pre-training run."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    steps: int
    files: int
    site_packages: bool
    vocab_size: int = 4096
    seq_len: int = 128
    batch: int = 4
    lr: float = 3e-3
    eval_files: int = 0


TINY = BaseRecipe(
    "tiny", n_layer=2, n_embd=128, n_head=4, steps=300, files=200, site_packages=False
)
CODE = BaseRecipe(
    "code",
    n_layer=4,
    n_embd=256,
    n_head=8,
    steps=3000,
    files=2000,
    site_packages=True,
    eval_files=40,
)
RECIPES = {r.name: r for r in (TINY, CODE)}


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


def tiny_config(
    vocab_size: int, eos_id: int, pad_id: int, recipe: BaseRecipe = TINY
) -> GPTBigCodeConfig:
    """The recipe's StarCoder-architecture config (multi-query attention, no dropout)."""
    return GPTBigCodeConfig(
        vocab_size=vocab_size,
        n_positions=CONTEXT,
        n_embd=recipe.n_embd,
        n_layer=recipe.n_layer,
        n_head=recipe.n_head,
        multi_query=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def _fim_rows(
    texts: list[str], tokenizer: PreTrainedTokenizerFast, rng: random.Random, seq_len: int
) -> Iterator[list[int]]:
    """One pass over texts, in order, FIM-transformed (half of them) and packed."""
    backend = tokenizer.backend_tokenizer
    ids = resolve_fim_tokens(tokenizer.get_vocab(), STARCODER)

    def encode(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    docs = (encode_document(text, encode, ids, rng, 0.5, 0.5) for text in texts)
    return pack(docs, seq_len, token_id(tokenizer, EOS))


def _pretrain_batches(
    texts: list[str], tokenizer: PreTrainedTokenizerFast, seed: int, recipe: BaseRecipe
) -> Iterator[torch.Tensor]:
    """Endless FIM-transformed, packed batches over the corpus, reshuffled every pass."""
    rng = random.Random(seed)
    while True:
        order = list(range(len(texts)))
        rng.shuffle(order)  # as TINY was first built: the same seed, the same weights
        docs = [texts[i] for i in order]
        for rows in batch_rows(_fim_rows(docs, tokenizer, rng, recipe.seq_len), recipe.batch):
            yield torch.tensor(rows)


def pretrain(
    model: GPTBigCodeForCausalLM, batches: Iterator[torch.Tensor], steps: int, lr: float = 3e-3
) -> list[float]:
    """A short AdamW run with warmup and cosine decay; returns the loss per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
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


@torch.no_grad()
def held_out_loss(
    model: GPTBigCodeForCausalLM, tokenizer: PreTrainedTokenizerFast, texts: list[str], seed: int
) -> float | None:
    """Mean token loss on files the model never trained on (FIM-transformed like training)."""
    rows = list(_fim_rows(texts, tokenizer, random.Random(seed), CONTEXT // 2))
    if not rows:
        return None
    losses = [
        model(input_ids=torch.tensor(b), labels=torch.tensor(b)).loss for b in batch_rows(rows, 8)
    ]
    return float(torch.stack(losses).mean())


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    # One thread makes CPU float reductions, and so the weights, identical on every machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def corpus_files(recipe: BaseRecipe, corpus_dir: Path | None = None) -> list[Path]:
    """The recipe's corpus: corpus_dir when given, else a sample of the stdlib (+ site-packages)."""
    if corpus_dir is not None or not recipe.site_packages:
        return code_files(corpus_dir, limit=recipe.files)
    return broad_code_files(recipe.files + recipe.eval_files)


def build_tiny_base(
    out_dir: Path,
    *,
    recipe: BaseRecipe = TINY,
    steps: int | None = None,
    corpus_dir: Path | None = None,
    seed: int = 0,
) -> Path:
    """Train the tokenizer and model on code and save both into out_dir; returns out_dir."""
    started = time.monotonic()
    paths = corpus_files(recipe, corpus_dir)
    texts = [read_text(p) for p in paths]
    if not texts:
        raise ValueError(f"no .py files of 1-20 kB under {corpus_dir}: nothing to train on")
    held = recipe.eval_files if len(texts) > 2 * recipe.eval_files else 0
    train, held_out = texts[: len(texts) - held], texts[len(texts) - held :]
    steps = recipe.steps if steps is None else steps
    with _single_thread():
        torch.manual_seed(seed)
        tokenizer = train_tokenizer(train, recipe.vocab_size)
        eos, pad = token_id(tokenizer, EOS), token_id(tokenizer, "<fim_pad>")
        model = GPTBigCodeForCausalLM(tiny_config(len(tokenizer), eos, pad, recipe))
        losses = pretrain(
            model, _pretrain_batches(train, tokenizer, seed, recipe), steps, recipe.lr
        )
        eval_loss = held_out_loss(model, tokenizer, held_out, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    info: dict[str, object] = {
        "tiny_version": TINY_VERSION,
        "recipe": asdict(recipe) | {"steps": steps},
        "seed": seed,
        "files": len(train),
        "eval_files": len(held_out),
        "corpus_digest": corpus_digest(paths),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0] if losses else None,
        "last_loss": sum(losses[-50:]) / len(losses[-50:]) if losses else None,
        "eval_loss": eval_loss,
        "build_s": round(time.monotonic() - started, 1),
    }
    (out_dir / "tailor_tiny.json").write_text(json.dumps(info, indent=2))
    return out_dir


def tiny_cache_key(
    *,
    recipe: BaseRecipe = TINY,
    steps: int | None = None,
    corpus_dir: Path | None = None,
    seed: int = 0,
) -> str:
    """A key that changes whenever the build's recipe, seed, corpus or libraries change."""
    import transformers

    digest = corpus_digest(corpus_files(recipe, corpus_dir))
    parts = [TINY_VERSION, asdict(recipe), steps, digest, seed]
    parts += [transformers.__version__, torch.__version__]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def tiny_base_cached(
    cache_root: Path,
    *,
    recipe: BaseRecipe = TINY,
    steps: int | None = None,
    corpus_dir: Path | None = None,
    seed: int = 0,
) -> Path:
    """The recipe's base under cache_root, built once per key (safe across concurrent processes)."""
    key = tiny_cache_key(recipe=recipe, steps=steps, corpus_dir=corpus_dir, seed=seed)
    target = cache_root / f"{recipe.name}-base-{key}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"{recipe.name}-base-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds it done
        if (target / "tailor_tiny.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-{key}-", dir=cache_root))
        try:
            build_tiny_base(tmp, recipe=recipe, steps=steps, corpus_dir=corpus_dir, seed=seed)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
