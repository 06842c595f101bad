"""KServe v2 gRPC (``inference.GRPCInferenceService``), wire-compatible with tritonclient."""
