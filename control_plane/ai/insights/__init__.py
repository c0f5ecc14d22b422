"""Insights: the rules over recent usage, the worker that applies them, and their rows."""
