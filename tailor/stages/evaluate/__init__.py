"""Evaluation: base vs adapter on the team's held-out code and HumanEval, and the publish gate."""
