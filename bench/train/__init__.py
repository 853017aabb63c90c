"""Training: optimizer and schedule, the model wrapper, one run, and the grid -> select -> final protocol."""
