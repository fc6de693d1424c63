"""The controller's record: one SQLite database of devices, campaigns, jobs, attempts and results."""
