"""The program's profiles: loading ``profiles/``, validating instances, installing them."""
