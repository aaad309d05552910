"""/v1/teams/{team}/datasets: harvest repositories into training sets."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    SenderDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, WRITE
from tailor.pagination import Page
from tailor.services.datasets import service
from tailor.services.datasets.schemas import DatasetOut
from tailor.stages.harvest.spec import HarvestSpec

router = APIRouter(prefix="/v1/teams/{team}/datasets", tags=["datasets"])


@router.post("", response_model=DatasetOut, status_code=status.HTTP_202_ACCEPTED, responses=WRITE)
def create_dataset(
    body: HarvestSpec, access: TeamMember, session: SessionDep, sender: SenderDep
) -> DatasetOut:
    """Start a harvest of some or all of the team's repositories."""
    return service.start_harvest(session, access, body, sender)


@router.get("", response_model=Page[DatasetOut], responses=READ)
def list_datasets(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[DatasetOut]:
    """The team's datasets with statistics and harvest state."""
    items, nxt = service.list_datasets(session, access, cursor, limit)
    return Page(items=items, next_cursor=nxt)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=READ)
def get_dataset(dataset_id: str, access: TeamViewer, session: SessionDep) -> DatasetOut:
    """One dataset: progress while harvesting, statistics when done."""
    return service.show(session, service.get_dataset(session, access, dataset_id))


@router.post("/{dataset_id}/cancel", response_model=DatasetOut, responses=WRITE)
def cancel_dataset(
    dataset_id: str, access: TeamMember, session: SessionDep, settings: SettingsDep
) -> DatasetOut:
    """Stop a queued or running harvest; at once if no live worker runs it."""
    return service.cancel_harvest(session, access, dataset_id, settings.job_stale_after_s)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def delete_dataset(
    dataset_id: str, access: TeamMember, session: SessionDep, store: StoreDep
) -> None:
    """Delete a finished dataset and its shards."""
    service.delete_dataset(session, access, dataset_id, store)
