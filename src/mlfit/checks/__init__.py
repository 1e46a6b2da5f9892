"""Budgets evaluated into verdicts: pure functions of a result and a target."""
