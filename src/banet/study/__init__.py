"""Studies: several models x seeds under one recipe of any task (run.py, tasks.py) and their report (report.py)."""
from .report import write_report
from .run import Study, load_study, run_study

__all__ = ['Study', 'load_study', 'run_study', 'write_report']
