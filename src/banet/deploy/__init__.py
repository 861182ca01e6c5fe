"""After training: export (ONNX/TorchScript with runtime parity), prediction, and explanations (gates, Grad-CAM)."""
