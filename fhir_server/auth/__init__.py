"""Authorization: SMART Backend Services tokens and their enforcement (docs/auth.md)."""
