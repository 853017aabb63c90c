"""`bench perf`: benchmarks that print ratios (methods, data pipeline, leaderboard rebuild, HF peft)."""
