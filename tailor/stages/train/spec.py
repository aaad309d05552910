"""TrainSpec: what a fine-tune is, as data (API body, CLI file, CR spec, entrypoint argument).

Only pydantic and the standard library here: the API imports this module and its image
carries no torch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailor.base_names import BaseName
from tailor.stages.package.spec import ADAPTER_NAME_PATTERN
from tailor.stages.train.errors import ModelError

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Hyperparameters Tailor chooses from the dataset's and the base's size when left null or
# "auto" (tailor.stages.train.auto). Null in the stored form: a CRD field has one type.
AUTO_FIELDS = ("epochs", "learning_rate", "lora_r", "lora_alpha", "lora_target_modules")

# LoRA target modules per architecture (`config.model_type`). Attention and MLP projections:
# adapting both matters for code style more than attention alone.
_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt_bigcode": ("c_attn", "c_proj", "c_fc"),
    "starcoder2": ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


# The output head's module name in every architecture above (adapted on small bases only).
OUTPUT_HEAD = "lm_head"


def default_lora_targets(model_type: str) -> list[str] | None:
    """LoRA target modules for an architecture, or None when Tailor has no default for it."""
    targets = _LORA_TARGETS.get(model_type)
    return list(targets) if targets is not None else None


def known_architectures() -> list[str]:
    """Architectures (`config.model_type`) with LoRA defaults."""
    return sorted(_LORA_TARGETS)


class FimTokenNames(BaseModel):
    """The four FIM special tokens of a tokenizer, by their text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(description="Token that opens the prefix, e.g. `<fim_prefix>`.")
    suffix: str = Field(description="Token that opens the suffix, e.g. `<fim_suffix>`.")
    middle: str = Field(description="Token after which the model writes the middle.")
    pad: str | None = Field(None, description="FIM padding token, if the tokenizer has one.")


class FsdpOptions(BaseModel):
    """How full fine-tuning shards the model across processes (FSDP2 through accelerate)."""

    model_config = ConfigDict(extra="forbid")

    sharding_strategy: Literal["full_shard", "shard_grad_op"] = Field(
        "full_shard",
        description=(
            "full_shard shards parameters, gradients and optimizer state and frees gathered "
            "parameters after the forward pass (least memory); shard_grad_op keeps them "
            "gathered until the backward pass (less communication)."
        ),
    )
    cpu_offload: bool = Field(
        False, description="Keep sharded parameters and optimizer state in CPU memory."
    )
    activation_checkpointing: bool = Field(
        False, description="Recompute each transformer block's activations in the backward pass."
    )


class TrainSpec(BaseModel):
    """A fine-tune of a base code model on one dataset of a team, producing one adapter."""

    model_config = ConfigDict(extra="forbid")

    base_model: BaseName = Field(
        description="Base model: its name in the platform's catalog (`GET /v1/base-models`, "
        "`tailor base list`), e.g. `starcoderbase-1b`; never a path.",
    )
    base_revision: str | None = Field(
        None,
        description="Revision of the base model; the platform sets the catalog's (a request "
        "may leave it out or repeat it).",
    )
    base_source: str | None = Field(
        None,
        description="Where the base's files are (hub id, s3:// prefix or directory): set by "
        "the platform from the catalog entry `base_model` names, for the entrypoint; a request "
        "that sets it is refused.",
    )
    team: str = Field(
        description="Slug of the team that owns the dataset and adapter.", pattern=SLUG
    )
    dataset_id: str = Field(
        description="Dataset id under `teams/<team>/datasets/`.", pattern=r"^[A-Za-z0-9._-]{1,128}$"
    )
    adapter_name: str = Field(
        description="Name of the adapter to produce (the registry's adapter name).",
        pattern=ADAPTER_NAME_PATTERN,
    )
    adapter_version: str = Field(
        "1",
        description="Version the adapter is stored under (a positive integer the registry "
        "assigns; the API sets it).",
        pattern=r"^[1-9][0-9]{0,8}$",
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "qlora",
        description="lora: low-rank adapters on a bf16/fp32 base; qlora: adapters on a 4-bit "
        "NF4 base (bitsandbytes); full: every weight trained, sharded with FSDP.",
    )
    lora_r: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None,
        description='LoRA rank; null (or "auto") grows with the dataset: 8 below 2M '
        "train tokens, then 16, 32, 64; at least 32 where the output head is adapted.",
    )

    lora_alpha: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description='LoRA scaling numerator (scale = alpha / r); null (or "auto") is 2 x rank.',
    )

    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | None = Field(
        None,
        description='Module names to adapt; null (or "auto") uses the architecture\'s attention '
        "and MLP projections (gpt_bigcode, starcoder2, llama, mistral, qwen2, gemma), plus the "
        "output head (`lm_head`) where it holds over a third of the base's weights (tiny bases).",
    )
    seq_len: int = Field(1024, ge=16, le=131072, description="Tokens per packed training sequence.")
    fim_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of documents turned into fill-in-the-middle."
    )
    spm_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of FIM documents in SPM order (the rest PSM)."
    )
    repo_rate: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of groups of a repository's files laid out as one repository-level "
        "example (repo name, file separators, paths), for families pre-trained that way "
        "(StarCoder2, Qwen2.5-Coder); other families train file by file.",
    )
    fim_tokens: FimTokenNames | None = Field(
        None,
        description="FIM token texts; None detects the family (tailor.fim) in the tokenizer.",
    )
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None,
        description='Peak learning rate; null (or "auto") scales LoRA\'s 2e-4 at 1B parameters '
        "by 1/sqrt(base size), within 1e-4..3e-3 (full fine-tuning: a tenth).",
    )

    lr_schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup."
    )
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warmup.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    epochs: Annotated[float, Field(gt=0.0, le=1000.0)] | None = Field(
        None,
        description='Passes over the dataset (when max_steps is unset); null (or "auto") is '
        "3, more for a small dataset (at least 300 steps, at most 50 epochs), fewer for a "
        "large one (at most 5,000 steps, at least 1 epoch).",
    )

    max_steps: int | None = Field(
        None, ge=1, description="Optimizer steps to run; overrides epochs when set."
    )
    micro_batch: int = Field(1, ge=1, description="Sequences per forward pass (per process).")
    grad_accum: int = Field(
        8, ge=1, description="Micro-batches accumulated into one optimizer step."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass to save memory."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Compute precision; auto is bf16 on a bf16-capable GPU, else fp32."
    )
    seed: int = Field(0, ge=0, description="Seed for initialisation, FIM choices and shuffling.")
    eval_interval: int = Field(
        0, ge=0, description="Optimizer steps between held-out evaluations; 0 = start and end only."
    )
    eval_batches: int = Field(
        8, ge=1, description="Held-out micro-batches per evaluation (bounded cost)."
    )
    checkpoint_interval: int = Field(
        0, ge=0, description="Optimizer steps between checkpoints to the object store; 0 = none."
    )
    allow_qlora_fallback: bool = Field(
        False,
        description="If QLoRA cannot run (no bitsandbytes-capable device), train plain LoRA "
        "instead and record it; otherwise the job fails.",
    )
    num_processes: int = Field(
        1, ge=1, le=1024, description="Processes (GPUs) for full fine-tuning with FSDP."
    )
    fsdp: FsdpOptions = Field(
        default_factory=FsdpOptions, description="FSDP options for full fine-tuning."
    )
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel; auto picks flash_attention_2 when installed on a GPU "
        "with compute capability 8.0+, else sdpa.",
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_is_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: None if k in AUTO_FIELDS and v == "auto" else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _check_combinations(self) -> TrainSpec:
        if self.num_processes > 1 and self.method != "full":
            raise ValueError(
                f"num_processes={self.num_processes} needs method 'full' "
                f"({self.method} trains in one process)"
            )
        if self.lora_target_modules is not None and not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty: leave it unset for the default")
        return self

    def number(self, name: Literal["epochs", "learning_rate", "lora_r", "lora_alpha"]) -> float:
        """A hyperparameter's value once chosen; an error while it is still auto."""
        value = getattr(self, name)
        if value is None:
            raise ModelError(
                f"{name} is 'auto': the run chooses it first (tailor.stages.train.auto)"
            )
        return float(value)

    def base_location(self) -> str:
        """Where the entrypoint loads the base from: the catalog source the platform set."""
        if not self.base_source:
            raise ModelError(
                f"base_source is not set: submit the spec through the API (POST /finetunes), "
                f"which resolves base_model {self.base_model!r} through the platform's catalog"
            )
        return self.base_source

    def checkpoint_prefix(self, job_id: str) -> str:
        """Where this job's checkpoints live in the object store."""
        return f"teams/{self.team}/finetunes/{job_id}/checkpoints/"

    def adapter_prefix(self) -> str:
        """Where the finished adapter is stored."""
        return f"teams/{self.team}/adapters/{self.adapter_name}/{self.adapter_version}/"

    def dataset_prefix(self) -> str:
        """Where the dataset's manifest and shards live."""
        return f"teams/{self.team}/datasets/{self.dataset_id}/"


class TrainResult(BaseModel):
    """What a finished fine-tune produced and how it went (stored in `tailor.json` too)."""

    adapter_prefix: str = Field(description="Object-store prefix of the stored adapter.")
    method: Literal["lora", "qlora", "full"] = Field(description="Method actually used.")
    fallback_reason: str | None = Field(
        None, description="Why QLoRA fell back to LoRA, when it did."
    )
    attention: str = Field(description="Attention implementation used.")
    precision: str = Field(description="Compute precision used.")
    device: str = Field(description="Device type trained on (cpu, cuda).")
    steps: int = Field(description="Optimizer steps run.")
    resumed_from_step: int | None = Field(None, description="Checkpoint step resumed from.")
    final_loss: float = Field(description="Training loss of the last step.")
    eval_loss_before: float | None = Field(None, description="Held-out loss of the base model.")
    eval_loss_after: float | None = Field(None, description="Held-out loss after training.")
    trainable_params: int = Field(description="Parameters that received gradients.")
    total_params: int = Field(description="All parameters of the trained model.")
    tokens_seen: int = Field(description="Training tokens processed.")
    tokens_per_s: float = Field(description="Mean training throughput.")
    peak_memory_bytes: int = Field(description="Peak accelerator (or process) memory.")
    padding_fraction: float = Field(description="Share of training positions that were padding.")
    duration_s: float = Field(description="Wall time of the run.")
    hyperparameters: dict[str, object] | None = Field(
        None, description="The values trained with and which were chosen automatically."
    )
    metrics: list[dict[str, float | int | None]] = Field(
        default_factory=list, description="Per-step metrics (the job's time series)."
    )
