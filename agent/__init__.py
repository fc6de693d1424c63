"""edgeperf agent: runs models under LoadGen rules on a device and reports KPI results.

Importing ``agent`` loads no runtime and nothing from plotting, dataframe or terminal-UI
libraries; a runtime is imported only when a job needs it (see ``agent.runtimes``).
"""

__version__ = "0.1.0"
