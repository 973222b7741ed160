"""Tables: the current version of each resource and its full, append-only history.

``resources.res_pk`` is a compact integer key so that search index tables (one per parameter
type, added by later migrations) can reference a resource without repeating type and id.
Bodies are stored as the exact JSON bytes served to clients (see docs/storage.md).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
PkType = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "resources",
    metadata,
    Column("res_pk", PkType, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=True),
    UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
)
Index("ix_resources_type_updated", resources.c.res_type, resources.c.last_updated)

resource_versions = Table(
    "resource_versions",
    metadata,
    #: Global, monotonically increasing: orders system history and keeps its paging stable.
    Column("seq", PkType, primary_key=True, autoincrement=True),
    Column("res_pk", PkType, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=True),
    #: Two writers can never both create version N of one resource: history cannot fork.
    UniqueConstraint("res_pk", "version_id", name="uq_resource_versions_pk_version"),
)
Index("ix_resource_versions_type_seq", resource_versions.c.res_type, resource_versions.c.seq)
Index("ix_resource_versions_updated", resource_versions.c.last_updated)
Index(
    "ix_resource_versions_type_id",
    resource_versions.c.res_type,
    resource_versions.c.res_id,
    resource_versions.c.version_id,
)
