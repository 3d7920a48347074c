"""The pipeline, one module per stage: recipe → toolchain → build → verify → package → smoke → report."""
