"""Tailor's Kubernetes operator: custom resources, manifest builders and kopf handlers.

Installed as `tailor_operator` (the folder `operator/` has no `__init__.py`, so the
standard library's `operator` module is never shadowed). Run it with
`kopf run -m tailor_operator.main --all-namespaces --standalone`.
"""
