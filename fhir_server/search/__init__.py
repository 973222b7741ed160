"""FHIR search: the parameter registry, the FHIRPath compiler and index-value extraction.

``registry`` knows every R4 search parameter (compiled per resource type), ``extract`` turns
a resource into typed index rows at write time, ``fhirpath`` compiles the expressions, and
``request`` parses search queries.
"""

from fhir_server.search.extract import IndexValues, extract, normalize
from fhir_server.search.registry import Registry, SearchParam, default_registry

__all__ = ["IndexValues", "Registry", "SearchParam", "default_registry", "extract", "normalize"]
