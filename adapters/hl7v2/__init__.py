"""HL7 v2 integration: intake (MLLP/HTTP, durable inbox, ACKs) and v2 -> FHIR conversion."""
