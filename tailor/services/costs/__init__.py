"""Costs: prices per GPU-hour, what jobs and endpoints spent, team budgets, estimates."""
