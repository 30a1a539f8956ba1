"""Layer 'lab': the classic synthetic experiments and gradient diagnostics."""

from rnnkit.lab.gradients import decay_per_step, gradient_flow
from rnnkit.lab.tasks import adding_problem, copy_problem, mackey_glass

__all__ = ["adding_problem", "copy_problem", "mackey_glass", "gradient_flow", "decay_per_step"]
