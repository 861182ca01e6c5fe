"""Files and checkpoints: atomic writes, safe weight reading, save/load in timm's local-dir layout, the one loader
(task-aware), and the facts a model gives about itself."""
from .facts import input_channels, label_names_of, model_data_config, norm_tensors
from .files import PathLike, atomic_write, load_state_dict_file, save_json_file, save_state_dict_file, save_torch_file
from .loader import (CONFIG, EMA_WEIGHTS, TASKS, WEIGHTS, Checkpoint, check_model_name, check_model_names,
                     find_checkpoint, fit_report, load_model, load_weights, read_checkpoint, read_config)
from .pretrained import load_pretrained, model_config, save_pretrained
from .figures import pyplot, save_figure
from .idx import read_idx

__all__ = ['atomic_write', 'load_state_dict_file', 'save_json_file', 'save_state_dict_file', 'save_torch_file',
           'PathLike', 'fit_report', 'CONFIG', 'EMA_WEIGHTS', 'TASKS', 'WEIGHTS', 'Checkpoint', 'check_model_name',
           'check_model_names', 'find_checkpoint', 'load_model', 'load_weights', 'read_checkpoint', 'read_config',
           'input_channels', 'label_names_of', 'load_pretrained', 'model_config', 'model_data_config', 'norm_tensors',
           'save_pretrained', 'pyplot', 'save_figure', 'read_idx']
