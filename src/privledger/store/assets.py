"""The data assets this node holds: registered datasets and registered models."""

from __future__ import annotations

from sqlmodel import Session, select

from privledger.store.models import LocalDataset, LocalModel


def held_asset_ids(session: Session) -> set[str]:
    """Lower-case hex ids of every dataset and model held here."""
    datasets = session.exec(select(LocalDataset.dataset_id)).all()
    models = session.exec(select(LocalModel.model_id)).all()
    return {*datasets, *models}


def holds_asset(session: Session, asset_id: str) -> bool:
    key = asset_id.lower()
    return session.get(LocalDataset, key) is not None or session.get(LocalModel, key) is not None
