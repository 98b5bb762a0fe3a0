"""The data model: users, projects, roles, and role assignments."""
import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "bench_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    password_hash: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_active_at: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)
    extra: Mapped[str] = mapped_column(String(255), default="{}")


class Project(Base):
    __tablename__ = "bench_project"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Role(Base):
    __tablename__ = "bench_role"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Assignment(Base):
    __tablename__ = "bench_assignment"
    user_id: Mapped[int] = mapped_column(ForeignKey("bench_user.id"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("bench_project.id"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("bench_role.id"), primary_key=True)
    role: Mapped[Role] = relationship(lazy="joined")
    project: Mapped[Project] = relationship(lazy="joined")
