"""Layer 'export': models with rnnkit layers as torch.nn modules and as ONNX files."""

from rnnkit.export.onnx import export_onnx
from rnnkit.export.torch_nn import quantize_dynamic, to_torch_nn, torch_cell_twin, torch_twin

__all__ = ["export_onnx", "to_torch_nn", "torch_twin", "torch_cell_twin", "quantize_dynamic"]
