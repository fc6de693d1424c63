"""Reading stored results: scorecards, intervals, edge-vs-baseline comparisons, the regression gate."""
