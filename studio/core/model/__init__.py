"""A model as the studio sees it: loading it from a source, its input spec and its measured tree."""
