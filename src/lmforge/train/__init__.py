"""The one task-agnostic training loop, with adapters, checkpoints and distributed launch."""
