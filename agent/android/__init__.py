"""Phones in the fleet: a host process drives an Android phone over adb and runs the phone's own
benchmark tools (LiteRT's ``benchmark_model``, ONNX Runtime's ``onnxruntime_perf_test``) there.

A phone cannot run the Python agent, so its results come from tools that report what they report:
this package reads their output as their sources print it (``tool_output``) and never invents a
number a tool did not give.
"""
