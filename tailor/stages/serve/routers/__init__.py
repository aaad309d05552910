"""The serving app's routes: one module per protocol, over the core in `tailor.stages.serve`."""
