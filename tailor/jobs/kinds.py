"""Job kinds and the Celery task that runs each (the worker registers them by these names)."""

from __future__ import annotations

TASKS = {
    "harvest": "tailor.harvest",
    "finetune": "tailor.finetune",
    "evaluation": "tailor.evaluate",
    "adapter-compose": "tailor.adapter.compose",
    "adapter-transfer": "tailor.adapter.transfer",
    "adapter-import": "tailor.adapter.import",
    "adapter-export": "tailor.adapter.export",
}
