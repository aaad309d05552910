"""The training Job the operator renders for a FineTuneJob, run: it trains and stores.

The operator reconciles a FineTuneJob on the emulator; Kueue's admission is played by
unsuspending the Job, and the harness kubelet runs its pod as a local process: `tailor train
run` on the CPU, the tiny base model and the team's dataset read from moto's S3 server, the
adapter written back there, exit status 0.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tailor_operator import training
from tailor_operator.config import ObjectStore, OperatorConfig

from tailor.demo.sample_data import house_style_documents, write_documents
from tailor.stages.train.spec import TrainSpec
from tailor.storage import S3Store
from tests.operator.conftest import (
    NAMESPACE,
    TEAM,
    Kube,
    Operator,
    custom_resource,
    finetune_spec,
    namespace_objects,
    upload_tiny_base,
)
from tests.support.kubelet import Kubelet
from tests.train.conftest import CACHE_ROOT

pytestmark = pytest.mark.asyncio

FINETUNES = f"/apis/tailor.dev/v1alpha1/namespaces/{NAMESPACE}/finetunejobs"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
DATASET = "ds-pod"


@pytest.fixture
def operator_config(s3_store: S3Store, s3_endpoint: str) -> OperatorConfig:
    """The platform's object store is the test's bucket behind moto."""
    return OperatorConfig(objectStore=ObjectStore(url=s3_store.url, endpointUrl=s3_endpoint))


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    """The harness kubelet; the trainer image's PATH is this environment's."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    runner = Kubelet(
        tmp_path / "node", {"PATH": path, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    )
    yield runner
    runner.stop_all()


def tiny_train_spec(store: S3Store) -> dict[str, Any]:
    """A few CPU steps of the tiny base (uploaded to the bucket) on the team's dataset."""
    base = upload_tiny_base(store, CACHE_ROOT)
    write_documents(store, TEAM, DATASET, house_style_documents(24, 6), rows_per_shard=10)
    return {
        "base_model": "tiny-base",
        "base_source": base,
        "team": TEAM,
        "dataset_id": DATASET,
        "adapter_name": "house-style",
        "method": "lora",
        "seq_len": 64,
        "micro_batch": 4,
        "grad_accum": 1,
        "max_steps": 4,
        "learning_rate": 5e-3,
        "lr_schedule": "constant",
        "lora_r": 8,
        "eval_batches": 2,
    }


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


async def test_the_rendered_training_pod_trains_and_writes_the_adapter_to_s3(
    kube: Kube,
    running_operator: Operator,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
    s3_store: S3Store,
) -> None:
    train = await asyncio.to_thread(tiny_train_spec, s3_store)
    # What the Team handler copies into a team namespace (its reactor is tested elsewhere).
    await kube.create(
        SECRETS,
        _secret(
            operator_config.objectStore.secretName,
            {"TAILOR_S3_ACCESS_KEY_ID": "test", "TAILOR_S3_SECRET_ACCESS_KEY": "test"},
        ),
    )
    spec = finetune_spec(train=train, jobId="job-pod")
    await kube.create(FINETUNES, custom_resource("FineTuneJob", "ft-pod", spec, NAMESPACE))
    path = f"{JOBS}/{training.job_name('ft-pod')}"
    job = await kube.wait_for(path, lambda o: o is not None)
    assert job is not None
    await kube.patch(path, {"spec": {"suspend": False}})  # Kueue admits it

    pod = kubelet.run(job, await namespace_objects(kube, NAMESPACE))
    await asyncio.to_thread(pod.wait_succeeded)

    prefix = TrainSpec.model_validate(train).adapter_prefix()
    stored = {key.removeprefix(prefix) for key in s3_store.list(prefix)}
    assert {"tailor.json", "adapter_model.safetensors"} <= stored, stored
