"""Layer 'lab': the classic synthetic experiments and gradient diagnostics."""

from rnnkit.lab.diagnostics import (
    gate_saturation,
    gradient_share,
    spectral_radius,
    state_gradient_norms,
)
from rnnkit.lab.gradients import decay_per_step, gradient_flow
from rnnkit.lab.recorder import DiagnosticsRecorder
from rnnkit.lab.tasks import (
    LISTOPS_OPS,
    TEMPORAL_ORDER_SYMBOLS,
    adding_problem,
    copy_problem,
    list_ops,
    mackey_glass,
    pixel_digits,
    temporal_order,
)

__all__ = ["adding_problem", "copy_problem", "temporal_order", "TEMPORAL_ORDER_SYMBOLS",
           "pixel_digits", "mackey_glass", "list_ops", "LISTOPS_OPS",
           "gradient_flow", "decay_per_step", "state_gradient_norms", "gradient_share",
           "gate_saturation", "spectral_radius", "DiagnosticsRecorder"]
