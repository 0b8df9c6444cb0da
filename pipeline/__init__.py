"""The pipeline that composes the libraries: profile → style → render → pin, and the provenance it records."""
