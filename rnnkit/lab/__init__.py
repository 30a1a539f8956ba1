"""Layer 'lab': the classic synthetic experiments and gradient diagnostics."""

from rnnkit.lab.gradients import decay_per_step, gradient_flow
from rnnkit.lab.tasks import LISTOPS_OPS, adding_problem, copy_problem, list_ops, mackey_glass

__all__ = ["adding_problem", "copy_problem", "mackey_glass", "list_ops", "LISTOPS_OPS",
           "gradient_flow", "decay_per_step"]
