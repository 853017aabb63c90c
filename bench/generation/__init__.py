"""Decoding procedures the installed transformers no longer offers (the official code's beam search)."""

from bench.generation.beam import LegacyBeamHypotheses, legacy_beam_search, legacy_generation_defaults

__all__ = ["LegacyBeamHypotheses", "legacy_beam_search", "legacy_generation_defaults"]
