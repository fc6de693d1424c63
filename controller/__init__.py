"""edgeperf controller: the `edgeperf` CLI that runs, stores and compares benchmark results.

It calls into ``agent`` (never the other way round): the demo and the datacenter baseline run
the agent's engine in-process so edge and datacenter numbers come from the same code.
"""
