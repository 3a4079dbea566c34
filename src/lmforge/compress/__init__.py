"""Make models smaller and faster: quantization (and, later, distillation, pruning, export)."""
