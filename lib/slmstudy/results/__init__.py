"""Run folders, tidy tables and the environment record of every result."""
