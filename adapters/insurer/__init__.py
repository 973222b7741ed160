"""Insurer referral exports (CSV/JSON) into the resources that start the pathway."""
