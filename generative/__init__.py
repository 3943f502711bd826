"""A diffusion engine with no cryo-EM knowledge (see docs/engine.md)."""
