"""ivz-bridge: FHIR R4 server for spine-care second-opinion programs."""

__version__ = "0.1.0"
