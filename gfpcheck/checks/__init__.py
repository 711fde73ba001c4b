"""Checks: findings from propagated contexts; each check is declared once in catalog."""
