"""Running a study's measurements: the plan (``plan``: merge every notebook's jobs
so each engine runs once, in an order that keeps caches warm and cross-checks
adjacent) and the executor (``executor``: run each job not already in the pool,
record it complete, say how long everything took)."""
