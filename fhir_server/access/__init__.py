"""Row-level access rules by client kind (docs/access.md)."""
