"""``banet study``: train several models under one recipe and several seeds, one result file per run.

A study config (YAML) names the task (``classify``, the default; ``detect``; ``segment``: :mod:`banet.study.tasks`),
the variants (timm model names: the classifier, or the backbone of the detector/segmenter), the seeds and the shared
training recipe (the keys that the task's ``train -c`` accepts). A detection or segmentation study may name a
``pretrain:`` study (a classification study config over the same variants): each backbone is then pretrained once by
that study (its first seed; cached, so every seed and every study naming it reuses the run) and every dense run starts
from that run's ``last/`` checkpoint, the paper's pretrain-then-fine-tune flow. Each (variant, seed) is trained by the task's own
trainer (:func:`banet.train.train`, :func:`banet.detection.train_detector`, ...) and then summarised in
``RESULTS/VARIANT-seedN.json`` (written atomically). Running the study again skips runs whose result
file exists and continues an interrupted run from its last checkpoint, so a study can be spread over sittings and
machines; :mod:`banet.study.report` turns the result files into a markdown report with figures.
"""
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..config import from_mapping, read_yaml_mapping, values_of_kind
from ..errors import BanetError
from ..io import check_model_names, save_json_file
from ..measure.benchmark import machine_info
from ..measure.profile import profile_model
from ..runs import MetricsLog, complete_checkpoint, load_train_state, saved_config
from ..train.trainer import check_config
from .tasks import StudyTask, study_task

__all__ = ['Study', 'load_study', 'train_config', 'recipe_of', 'study_recipe', 'read_result', 'plan', 'run_one',
           'run_study']

STUDY_KEYS = ('name', 'title', 'task', 'variants', 'seeds', 'recipe', 'output', 'results', 'report', 'claim',
              'pretrain', 'floor')
DEFAULT_SEEDS = (0, 1, 2)


def set_by_study(task: StudyTask, pretrained: bool = False) -> frozenset:
    """What a run computes is its config's fields of kind 'recipe'; the study sets the 'run' fields (model, seed,
    folders) and the variant's option itself (and, with a pretraining study, the backbone checkpoint), and the
    'machine' fields may differ between machines."""
    return (frozenset(values_of_kind(task.config(), 'run')) | {task.variant_key}
            | ({'backbone_checkpoint'} if pretrained else set()))


@dataclass
class Study:
    """A parsed study config; paths are relative to the current directory, like ``banet train --output``."""
    path: Path
    name: str
    title: str
    variants: List[str]
    seeds: List[int]
    recipe: Dict[str, Any]
    output: Path
    results: Path
    report: Path
    claim: List[List[str]] = field(default_factory=list)
    task: StudyTask = field(default_factory=lambda: study_task('classify', ''))
    pretrain: Optional['Study'] = None   # the classification study that pretrains every backbone
    floor: Dict[str, float] = field(default_factory=dict)  # final metric -> the least every run must reach

    @staticmethod
    def run_name(variant: str, seed: int) -> str:
        return f'{variant}-seed{seed}'

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.output / self.run_name(variant, seed)

    def result_file(self, variant: str, seed: int) -> Path:
        return self.results / f'{self.run_name(variant, seed)}.json'

    def pretrained_from(self, variant: str) -> Optional[Path]:
        """The checkpoint ``variant``'s runs start from: the pretraining study's run of its first seed."""
        if self.pretrain is None:
            return None
        return self.pretrain.run_dir(variant, self.pretrain.seeds[0]) / 'last'


def _names(value: Any, what: str, where: str) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BanetError(f'{where}: {what} must be a non-empty list of model names')
    if len(set(value)) != len(value):
        raise BanetError(f'{where}: {what} names a model twice: {value}')
    return value


def load_study(path: str, output: Optional[str] = None, results: Optional[str] = None) -> Study:
    """Read and check a study config (every check that needs no data); ``output``/``results`` override it."""
    file = Path(path)
    raw = read_yaml_mapping(path, 'study config', f'with keys {", ".join(STUDY_KEYS)}')
    where = f'study config {path}'
    unknown = sorted(set(raw) - set(STUDY_KEYS))
    if unknown:
        raise BanetError(f'{where}: unknown key(s) {unknown}; the keys are {", ".join(STUDY_KEYS)} (training '
                         'options go under recipe:)')
    task = study_task(raw.get('task', 'classify'), where)
    variants = _names(raw.get('variants'), 'variants', where)
    check_model_names(variants, 'variant', f'{where}: ')
    seeds = raw.get('seeds', list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not seeds:
        raise BanetError(f'{where}: seeds must be a non-empty list of integers, e.g. [0, 1, 2]')
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        raise BanetError(f'{where}: seeds must be distinct integers, got {seeds}')
    pretrain = _pretrain_study(raw.get('pretrain'), task, variants, where)
    recipe = raw.get('recipe') or {}
    if not isinstance(recipe, dict):
        raise BanetError(f'{where}: recipe must be a mapping of banet train options (batch_size: 128, ...)')
    fixed = sorted(set_by_study(task, pretrain is not None) & {str(k).replace('-', '_') for k in recipe})
    if fixed:
        raise BanetError(f'{where}: recipe must not set {fixed}: the study sets them for each run (list the '
                         f'{task.variant_key}s under variants:, the seeds under seeds:, the folders under '
                         'output:/results:)')
    recipe = from_mapping(task.config, recipe, f'{where}: recipe')
    # every check that needs no data; the data folder is given on each machine (--data-dir)
    task.config(**({'data_dir': '.', **recipe} if task.name != 'classify' else recipe),
                **{task.variant_key: variants[0]}).check()
    claim = [_names(group, 'each claim group', where) for group in (raw.get('claim') or [])]
    outside = sorted({v for group in claim for v in group} - set(variants))
    if outside:
        raise BanetError(f'{where}: claim names {outside}, which are not among the variants')
    floor = raw.get('floor') or {}
    known = {task.final_key, task.second_key, *task.extra_keys}
    if not isinstance(floor, dict) or not all(k in known and isinstance(v, (int, float)) for k, v in floor.items()):
        raise BanetError(f'{where}: floor must map final metrics ({", ".join(sorted(known))}) to numbers, e.g. '
                         f'{{{task.second_key}: 0.5}}')
    name = str(raw.get('name') or file.stem)
    out = Path(output or raw.get('output') or Path('runs') / 'study' / name)
    res = Path(results or raw.get('results') or out / 'results')
    return Study(path=file, name=name, title=str(raw.get('title') or name), variants=variants, seeds=seeds,
                 recipe=recipe, output=out, results=res, report=Path(raw.get('report') or out / 'report.md'),
                 claim=claim, task=task, pretrain=pretrain, floor=dict(floor))


def _pretrain_study(path: Any, task: StudyTask, variants: List[str], where: str) -> Optional[Study]:
    """The classification study named by ``pretrain:`` (paths relative to the current directory), checked."""
    if path is None:
        return None
    if task.name == 'classify' or not isinstance(path, str):
        raise BanetError(f'{where}: pretrain: names a classification study config (a path) and only a detect or '
                         'segment study can have one')
    pretrain = load_study(path)
    if pretrain.task.name != 'classify':
        raise BanetError(f'{where}: pretrain: {path} is a {pretrain.task.name} study; it must be a classification '
                         'study (task: classify)')
    missing = [v for v in variants if v not in pretrain.variants]
    if missing:
        raise BanetError(f'{where}: the pretraining study {path} has no variant(s) {missing}: add them to its '
                         'variants')
    return pretrain


def train_config(study: Study, variant: str, seed: int, machine: Optional[Dict[str, Any]] = None,
                 resume: bool = False) -> Any:
    """The task config of one run: the recipe, then ``machine`` overrides, then the run's own names."""
    pretrained = study.pretrained_from(variant)
    return study.task.config(**{**study.recipe, **(machine or {})}, **{study.task.variant_key: variant}, seed=seed,
                             output=str(study.output), experiment=study.run_name(variant, seed),
                             resume=str(study.run_dir(variant, seed)) if resume else None,
                             **({'backbone_checkpoint': str(pretrained)} if pretrained else {}))


def recipe_of(config: Any, variant_key: str = 'model') -> Dict[str, Any]:
    """What a run computes: its options of kind ``recipe`` (the metadata of its config says which) but the
    variant's own, as JSON values."""
    values = values_of_kind(config, 'recipe')
    values.pop(variant_key, None)
    return json.loads(json.dumps(values))


def run_recipe(study: Study, config: Any) -> Dict[str, Any]:
    """What a run of ``study`` computes: :func:`recipe_of` its config, and with a pretraining study that study's
    name, seed and recipe in place of the (per-variant) backbone checkpoint."""
    recipe = recipe_of(config, study.task.variant_key)
    if study.pretrain is not None:
        recipe.pop('backbone_checkpoint', None)
        recipe['pretrain'] = {'study': study.pretrain.name, 'seed': study.pretrain.seeds[0],
                              'recipe': study_recipe(study.pretrain)}
    return recipe


def study_recipe(study: Study) -> Dict[str, Any]:
    """The recipe every run of ``study`` must have been trained with (the same for all variants and seeds)."""
    return run_recipe(study, train_config(study, study.variants[0], study.seeds[0]))


def _same_recipe(saved: Dict[str, Any], current: Dict[str, Any], task: StudyTask) -> List[str]:
    """The keys whose values differ; an option newer than ``saved`` counts only if set away from its default."""
    defaults = recipe_of(task.config(), task.variant_key)
    return sorted(k for k in set(saved) | set(current)
                  if saved.get(k, defaults.get(k)) != current.get(k, defaults.get(k)))


def _recipe_diff(saved: Dict[str, Any], current: Dict[str, Any], task: StudyTask) -> str:
    keys = _same_recipe(saved, current, task)
    return ', '.join(f'{k}: {saved.get(k)!r} there, {current.get(k)!r} in the config' for k in keys)


def read_result(file: Path, recipe: Dict[str, Any], variant: str, seed: int,
                task: Optional[StudyTask] = None) -> Dict[str, Any]:
    """The result file of (``variant``, ``seed``) of a ``task`` study (default: classification), checked to be
    readable and trained with ``recipe``."""
    task = task or study_task('classify', '')
    try:
        result = json.loads(file.read_text())
    except ValueError as e:
        raise BanetError(f'result file {file} is not valid JSON ({e}); delete it to run that (variant, seed) '
                         'again') from e
    missing = [k for k in ('variant', 'seed', task.final_key, 'curve', 'recipe') if k not in result]
    if missing:
        raise BanetError(f'result file {file} lacks {missing}; delete it to run that (variant, seed) again')
    if (result['variant'], result['seed']) != (variant, seed):
        raise BanetError(f'result file {file} holds {result["variant"]} seed {result["seed"]}, not {variant} seed '
                         f'{seed}: it was renamed or copied to the wrong place')
    if _same_recipe(result['recipe'], recipe, task):
        raise BanetError(f'result file {file} was trained with another recipe '
                         f'({_recipe_diff(result["recipe"], recipe, task)}); every variant must share one recipe: move '
                         'the old results away (or point results: to a new folder) and run the study again')
    return result


def _run_state(study: Study, variant: str, seed: int, recipe: Dict[str, Any]) -> str:
    """'done' (result file exists), 'resume' (a usable checkpoint of the same recipe exists) or 'new'."""
    if study.result_file(variant, seed).is_file():
        return 'done'
    run_dir = study.run_dir(variant, seed)
    last = complete_checkpoint(run_dir / 'last')
    if last is None:
        return 'new'  # nothing worth keeping: (re)start the run in this folder
    saved = run_recipe(study, study.task.config(**saved_config(run_dir, study.task.config)))
    if _same_recipe(saved, recipe, study.task):
        raise BanetError(f'the run folder {run_dir} holds a checkpoint of another recipe '
                         f'({_recipe_diff(saved, recipe, study.task)}); delete or move it to train that run afresh')
    try:
        load_train_state(last)
    except BanetError as e:
        print(f'study: cannot resume {run_dir} ({e}); it restarts from epoch 0', flush=True)
        return 'new'
    return 'resume'


def _subset(chosen: Optional[Sequence], configured: List, what: str, study: Study) -> List:
    if not chosen:
        return list(configured)
    outside = [c for c in chosen if c not in configured]
    if outside:
        raise BanetError(f'--{what} {outside}: not in the {what} of {study.path} ({configured}); add them there')
    return [c for c in configured if c in chosen]


def plan(study: Study, variants: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
         ) -> Tuple[Dict[str, Any], List[Tuple[str, int, str]]]:
    """The recipe and the state of every selected run, seeds in the outer loop (all variants of seed 0 first).

    Checks every existing result of the config (not only the selected ones) against the recipe.
    """
    variants = _subset(variants, study.variants, 'variants', study)
    seeds = _subset(seeds, study.seeds, 'seeds', study)
    recipe = study_recipe(study)
    for v in study.variants:
        for s in study.seeds:
            if study.result_file(v, s).is_file():
                read_result(study.result_file(v, s), recipe, v, s, study.task)
    return recipe, [(v, s, _run_state(study, v, s, recipe)) for s in seeds for v in variants]


def pretrain_machine(machine: Dict[str, Any]) -> Dict[str, Any]:
    """The machine options of a dense study that also hold for its pretraining (``pretrain_data_dir`` becomes the
    pretraining's ``data_dir``: the two datasets live in different folders)."""
    chosen = {k: v for k, v in machine.items() if k not in ('data_dir', 'pretrain_data_dir')}
    if machine.get('pretrain_data_dir'):
        chosen['data_dir'] = machine['pretrain_data_dir']
    return chosen


def _float(value: str) -> Optional[float]:
    x = float(value) if value not in ('', None) else math.nan
    return None if math.isnan(x) else x


def _relative(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (no machine paths in result files)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _result(study: Study, args: Any, out: Dict[str, Any], device: str, wall: float,
            resumed_from: int) -> Dict[str, Any]:
    task = study.task
    run_dir, model = Path(out['run_dir']), out['model']
    rows = MetricsLog(run_dir).read()
    if not rows:
        raise RuntimeError(f'{run_dir / "metrics.csv"} is empty: the run trained no epoch')
    curve = {'epoch': [int(r['epoch']) for r in rows],
             **{k: [_float(r[k]) for r in rows] for k in (task.metric, 'val_loss', 'train_loss') if k in rows[0]}}
    validated = [x for x in curve[task.metric] if x is not None]
    if task.name == 'classify':  # params and MACs at the trained input (the detectors' vary with their images)
        config = json.loads((run_dir / 'last' / 'config.json').read_text())
        size = config['pretrained_cfg']['input_size'][-1]
        prof = profile_model(args.model, size, num_classes=config['num_classes'], in_chans=config['in_chans'])
        shape = {'img_size': size, 'in_chans': config['in_chans'], 'num_classes': config['num_classes']}
    else:
        prof, shape = {'params': sum(p.numel() for p in model.parameters()), 'macs': None}, {}
    img_s = [x for x in (_float(r['train_img_s']) for r in rows) if x is not None]
    return {
        'study': study.name,
        'task': task.name,
        'variant': getattr(args, task.variant_key),
        'seed': args.seed,
        task.final_key: _float(rows[-1][task.metric]),
        f'{task.final_key}_best': max(validated),
        task.second_key: _float(rows[-1][task.second]),
        **{key: out.get(k) for k, key in zip(task.extras, task.extra_keys)},
        'epochs': len(rows),
        'curve': curve,
        'params': prof['params'],
        'macs': prof['macs'],
        **shape,
        'train_img_s': statistics.median(img_s),
        'wall_time_s': wall,
        'resumed_from_epoch': resumed_from,
        'device': device,
        'machine': machine_info(device),
        'finished': time.strftime('%Y-%m-%d %H:%M:%S %z'),
        'run_dir': _relative(run_dir),
        'recipe': run_recipe(study, args),
    }


def run_one(study: Study, variant: str, seed: int, machine: Optional[Dict[str, Any]] = None,
            resume: bool = False) -> Path:
    """Train one (variant, seed) with the task's trainer (continuing its checkpoint if ``resume``); write its
    result."""
    args = train_config(study, variant, seed, machine, resume)
    last = complete_checkpoint(study.run_dir(variant, seed) / 'last')
    resumed_from = int(load_train_state(last)['epoch']) if resume else 0
    start = time.perf_counter()
    out = study.task.train(args)
    wall = time.perf_counter() - start
    device = str(next(out['model'].parameters()).device)
    result = _result(study, args, out, device, wall, resumed_from)
    return save_json_file(result, study.result_file(variant, seed))


def run_study(study: Study, variants: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
              machine: Optional[Dict[str, Any]] = None, dry_run: bool = False) -> List[Path]:
    """Train every selected run that has no result yet; returns the result files written.

    Everything is checked before the first run starts: names, recipe, data, existing results and checkpoints.
    """
    machine = {k: v for k, v in (machine or {}).items() if v is not None}
    recipe, runs = plan(study, variants, seeds)
    dense_machine = {k: v for k, v in machine.items() if k != 'pretrain_data_dir'}
    first = train_config(study, runs[0][0], runs[0][1], dense_machine)
    if study.task.name == 'classify':
        check_config(first, [first.train_split, first.val_split])  # data present, sizes valid: fail before work
    else:
        first.check()  # a --data-dir given
    if (first.device or '').startswith('cuda') and not torch.cuda.is_available():
        raise BanetError(f'the recipe asks for device {first.device}, but CUDA is not available here: pass '
                         '--device cpu (the device is not part of the recipe)')
    if study.pretrain is not None:  # every backbone of the selection pretrained first (skipped where done)
        chosen = sorted({v for v, _, state in runs if state != 'done'}, key=study.variants.index)
        if chosen:
            run_study(study.pretrain, chosen, study.pretrain.seeds[:1], pretrain_machine(machine), dry_run)
        if not dry_run:
            for variant in chosen:
                if complete_checkpoint(study.pretrained_from(variant)) is None:
                    raise BanetError(f'{variant} has a pretraining result in {study.pretrain.results} but no '
                                     f'checkpoint in {study.pretrained_from(variant)}: move that result file away '
                                     'to pretrain it again here, or copy the run folder to this machine')
    todo = [(v, s, state) for v, s, state in runs if state != 'done']
    print(f'study {study.name}: {len(runs)} run(s) selected: {len(runs) - len(todo)} done, '
          f'{sum(st == "resume" for *_, st in todo)} to resume, {sum(st == "new" for *_, st in todo)} to train; '
          f'results in {study.results}', flush=True)
    written = []
    for i, (variant, seed, state) in enumerate(todo, 1):
        verb = ('would ' if dry_run else '') + ('resume' if state == 'resume' else 'train')
        print(f'study {study.name} [{i}/{len(todo)}]: {verb} {variant} seed {seed} in '
              f'{study.run_dir(variant, seed)}', flush=True)
        if not dry_run:
            written.append(run_one(study, variant, seed, dense_machine, state == 'resume'))
            print(f'study {study.name}: wrote {written[-1]}', flush=True)
    return written
