"""Datasets: a team's harvested training sets and the harvest jobs that build them."""
