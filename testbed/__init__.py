"""The test bed: stand-ins for the cloud and the module, used by tests, the demo and benchmarks."""
