"""The run layer under every task: options, run folder, checkpoint writer, resume, the loop ``fit(task, cfg)``."""
from .checkpoint import KILL_ENV, complete_checkpoint, load_train_state, save_checkpoint, settle
from .distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed
from .loop import fit
from .folder import check_resume, default_name, resume_point, run_folder, saved_config, write_config
from .metrics import MetricsLog, plot_metrics
from .options import COMPILE_MODES, MachineOptions, OptimOptions, Options, RunOptions, default_workers
from .precision import Precision, compile_model, cpu_has_native_bf16, resolve_precision
from .step import NonFiniteLossError, StepConfig, train_one_epoch
from .task import Data, Task

__all__ = ['KILL_ENV', 'complete_checkpoint', 'load_train_state', 'save_checkpoint', 'settle',
           'DistInfo', 'broadcast_object', 'cleanup_distributed', 'init_distributed', 'fit', 'check_resume',
           'default_name', 'resume_point', 'run_folder', 'saved_config', 'write_config', 'MetricsLog', 'plot_metrics',
           'COMPILE_MODES', 'MachineOptions', 'OptimOptions', 'Options', 'RunOptions', 'default_workers', 'Precision',
           'compile_model', 'cpu_has_native_bf16', 'resolve_precision', 'NonFiniteLossError', 'StepConfig',
           'train_one_epoch', 'Data', 'Task']
