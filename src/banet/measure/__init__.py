"""Measurement: interleaved speed and memory benchmarks, parameter and MAC counts."""
from .benchmark import BenchConfig, machine_info, run_benchmark
from .profile import profile_model, profile_table

__all__ = ['BenchConfig', 'machine_info', 'run_benchmark', 'profile_model', 'profile_table']
