"""Layer 'export': models with rnnkit layers as torch.nn modules and as ONNX files."""

from rnnkit.export.graph_layers import GraphLayer, for_export
from rnnkit.export.onnx import ExportedGraph, export_model, export_onnx
from rnnkit.export.torch_nn import quantize_dynamic, to_torch_nn, torch_cell_twin, torch_twin

__all__ = ["export_onnx", "export_model", "ExportedGraph", "GraphLayer", "for_export",
           "to_torch_nn", "torch_twin", "torch_cell_twin", "quantize_dynamic"]
