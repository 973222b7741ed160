"""Black-box FHIR search suite: a spine second-opinion data set searched over HTTP."""
