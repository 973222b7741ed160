"""The second-opinion pathway: teams, booking, verdict, pathway view, report (docs/pathway.md)."""
