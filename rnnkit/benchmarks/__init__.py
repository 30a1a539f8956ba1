"""Layer 'benchmarks': the engine timed against torch.nn and onnxruntime, behind `rnnkit bench`.

`engine.py` times the standard cells (`rnnkit bench`, `python -m rnnkit.benchmarks.engine`),
`variants.py` the cell variants against their reference (`python -m rnnkit.benchmarks.variants`).
They print tables and never gate tests; bench/ holds the application benchmarks.
"""
