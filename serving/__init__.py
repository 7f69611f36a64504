"""The gRPC recommendation server. It imports NumPy, FAISS, onnxruntime and gRPC, never torch."""
