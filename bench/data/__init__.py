"""Data: list-file sources, the decode-once tensor cache, tensor transforms, generated mini data."""
