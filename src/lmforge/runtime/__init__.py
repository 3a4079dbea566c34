"""Running models for inference below the stages: onnxruntime sessions and ONNX export of
loaded networks (``onnx``), sentence pooling (``pooling``). Nothing here resolves a model
reference; ``lmforge.hub`` does that and hands loaded networks down."""
