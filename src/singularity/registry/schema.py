"""SQLAlchemy schema of the registry (SQLite by default; any SQLAlchemy URL works)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from singularity.db import UTCDateTime

RUN_STATUSES = ("running", "succeeded", "failed")
STRATEGY_STATUSES = ("candidate", "champion", "retired")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    exchange: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    timeframe: Mapped[str] = mapped_column(String(8))
    first: Mapped[datetime] = mapped_column(UTCDateTime())
    last: Mapped[datetime] = mapped_column(UTCDateTime())
    rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ForgeRun(Base):
    __tablename__ = "forge_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    timeframe: Mapped[str] = mapped_column(String(8))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    stage: Mapped[str] = mapped_column(String(32), default="starting")
    stage_detail: Mapped[str] = mapped_column(Text, default="")
    agent_id: Mapped[str] = mapped_column(String(64), default="")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    """Forge generation of this symbol (1 for the first cycle, parent's + 1 after)."""
    parent_champion_id: Mapped[int | None] = mapped_column(ForeignKey("strategies.id", use_alter=True))
    champion_id: Mapped[int | None] = mapped_column(ForeignKey("strategies.id", use_alter=True))
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    machine_id: Mapped[str | None] = mapped_column(String(64), default="")
    boot_id: Mapped[str | None] = mapped_column(String(64), default="")
    pid_started: Mapped[float | None] = mapped_column(Float)
    """The process's start time: with machine and boot ids it tells a reused pid from the run's."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seconds: Mapped[float | None] = mapped_column(Float)
    stage_seconds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    report_path: Mapped[str] = mapped_column(Text, default="")


class Strategy(Base):
    __tablename__ = "strategies"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forge_runs.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    timeframe: Mapped[str] = mapped_column(String(8))
    expression: Mapped[str] = mapped_column(Text)
    readable: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer)
    fitness: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    in_sample: Mapped[dict[str, Any]] = mapped_column(default=dict)
    holdout: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gauntlet: Mapped[list[Any]] = mapped_column(default=list)
    explanation: Mapped[str] = mapped_column(Text, default="")
    parents: Mapped[list[Any]] = mapped_column(default=list)
    """Ids of the registry strategies this one descends from (Reborn seeding)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forge_runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    artifact_path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    winner: Mapped[bool] = mapped_column(default=False)


class GenerationStat(Base):
    __tablename__ = "generation_stats"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forge_runs.id"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
