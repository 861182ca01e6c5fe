"""The report of a ``banet study``: result files → markdown tables, a pairwise comparison and two PNG figures.

Per variant: the task's final metric (test top-1; box AP with AP50; mIoU with pixel accuracy) as mean ± sample
standard deviation over the finished seeds, the standard error of the
mean (SE = std / √n), the seeds themselves, params, MACs, training images/s, wall time and the machine each number
came from. Pairs of variants are compared by the difference of their means and its standard error
√(SE_a² + SE_b²) (independent runs); a difference beyond 2 SE is flagged. Text between the hand-written markers
of an existing report survives regeneration.
"""
import itertools
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..io.figures import pyplot, save_figure
from ..io.files import atomic_write
from .run import Study, read_result, study_recipe

__all__ = ['VariantStats', 'Comparison', 'collect', 'compare', 'render_markdown', 'write_report']

BEGIN = '<!-- banet study: hand-written section begins (kept when the report is regenerated) -->'
END = '<!-- banet study: hand-written section ends -->'
_PLACEHOLDER = ('_Not written yet: read the tables and the generated summary above, then replace this paragraph '
                '(it is kept when the report is regenerated)._')


@dataclass
class VariantStats:
    """The finished runs of one variant and their summary; ``n`` < ``configured`` means incomplete."""
    variant: str
    configured: int
    results: List[Dict[str, Any]] = field(default_factory=list)
    key: str = 'test_top1'  # the result-file key of the task's final metric

    @property
    def n(self) -> int:
        return len(self.results)

    def _values(self) -> List[float]:
        return [r[self.key] for r in self.results]

    @property
    def mean(self) -> Optional[float]:
        return statistics.mean(self._values()) if self.n else None

    @property
    def std(self) -> Optional[float]:
        return statistics.stdev(self._values()) if self.n >= 2 else None

    @property
    def se(self) -> Optional[float]:
        return self.std / math.sqrt(self.n) if self.n >= 2 else None


@dataclass
class Comparison:
    """mean(a) − mean(b) and its standard error (None with fewer than 2 seeds on either side)."""
    a: str
    b: str
    diff: Optional[float]
    se: Optional[float]

    @property
    def beyond_2se(self) -> Optional[bool]:
        return None if self.se is None else abs(self.diff) > 2 * self.se

    def seeds_for_2se(self, n: int) -> Optional[int]:
        """Seeds per variant at which the observed difference would equal 2 SE (same spread): n·(2 SE/|diff|)²."""
        if self.se is None or not self.diff:
            return None
        return max(n, math.ceil(n * (2 * self.se / abs(self.diff)) ** 2))


def collect(study: Study) -> Tuple[List[VariantStats], List[Path]]:
    """The finished runs of every variant of the config (checked against its recipe), and ignored result files."""
    recipe = study_recipe(study)
    stats = []
    for variant in study.variants:
        vs = VariantStats(variant, len(study.seeds), key=study.task.final_key)
        for seed in study.seeds:
            file = study.result_file(variant, seed)
            if file.is_file():
                vs.results.append(dict(read_result(file, recipe, variant, seed, study.task), file=file))
        stats.append(vs)
    expected = {study.result_file(v, s) for v in study.variants for s in study.seeds}
    ignored = sorted(p for p in study.results.glob('*.json') if p not in expected) if study.results.is_dir() else []
    return stats, ignored


def compare(a: VariantStats, b: VariantStats) -> Comparison:
    if not a.n or not b.n:
        return Comparison(a.variant, b.variant, None, None)
    se = math.sqrt(a.se ** 2 + b.se ** 2) if a.se is not None and b.se is not None else None
    return Comparison(a.variant, b.variant, a.mean - b.mean, se)


def _verdict(c: Comparison) -> str:
    """How the data bear on the claim mean(a) > mean(b)."""
    if c.diff is None:
        return 'no results'
    direction = 'claimed direction' if c.diff > 0 else 'reversed' if c.diff < 0 else 'tie'
    if c.se is None:
        return f'{direction}, no SE (needs ≥ 2 seeds each)'
    if abs(c.diff) > 2 * c.se:
        return 'reproduced (> 2 SE)' if c.diff > 0 else 'reversed (> 2 SE)'
    return f'{direction}, within noise'


def _f(x: Optional[float], digits: int = 2, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals, '–' for None."""
    return '–' if x is None else f'{x:{"+" if sign else ""}.{digits}f}'


def _machines(stats: List[VariantStats]) -> Dict[str, Tuple[str, Dict[str, str]]]:
    """Label (M1, M2, …) per distinct (device, machine info), in order of first appearance."""
    labels: Dict[str, Tuple[str, Dict[str, str]]] = {}
    for vs in stats:
        for r in vs.results:
            key = json.dumps([r['device'], r['machine']], sort_keys=True)
            if key not in labels:
                labels[key] = (f'M{len(labels) + 1}', r['machine'])
            r['machine_label'] = labels[key][0]
    return labels


def _device_words(device: str, m: Dict[str, str]) -> str:
    if device.startswith('cuda'):
        return f'{m.get("gpu", "GPU")} ({device})'
    return f'{m.get("cpu", "CPU")}, {m.get("torch_threads", "?")} torch threads'


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _hand_written(report: Path) -> str:
    if report.is_file():
        text = report.read_text()
        if BEGIN in text and END in text.split(BEGIN, 1)[1]:
            return text.split(BEGIN, 1)[1].split(END, 1)[0].strip('\n')
    return _PLACEHOLDER


def _summary(study: Study, stats: List[VariantStats], pairs: List[Comparison], claims: List[Comparison]) -> List[str]:
    """The generated reading: ranking, differences beyond 2 SE, the claim's tally, what more seeds would do."""
    done = [vs for vs in stats if vs.n]
    total = sum(vs.n for vs in stats)
    t = study.task
    d, unit = t.digits, f' {t.unit}' if t.unit else ''
    lines = []
    incomplete = [f'`{vs.variant}` ({vs.n}/{vs.configured})' for vs in stats if vs.n < vs.configured]
    if incomplete:
        lines.append(f'- **Incomplete:** {total} of {len(stats) * len(study.seeds)} runs finished; seeds missing '
                     f'for {", ".join(incomplete)}. Every statement below uses the finished seeds only.')
    else:
        lines.append(f'- Complete: all {total} runs ({len(stats)} variants × {len(study.seeds)} seeds) finished.')
    if not done:
        return lines
    ranked = sorted(done, key=lambda vs: -vs.mean)
    lines.append(f'- Ranking by mean final test {t.label}: ' + ' > '.join(
        f'`{vs.variant}` ({vs.mean:.{d}f})' for vs in ranked) + '.')
    spreads = [vs.std for vs in done if vs.std is not None]
    if spreads:
        lines.append(f'- The means span {ranked[0].mean - ranked[-1].mean:.{d}f}{unit}; the seed-to-seed standard '
                     f'deviation within a variant is {min(spreads):.{d}f}–{max(spreads):.{d}f}{unit}.')
    beyond = [c for c in pairs if c.beyond_2se]
    judged = [c for c in pairs if c.se is not None]
    if beyond:
        lines.append(f'- {len(beyond)} of {len(judged)} pairs differ by more than 2 SE: ' + '; '.join(
            f'`{c.a}` − `{c.b}` = {c.diff:+.{d}f} ± {c.se:.{d}f}{unit}' for c in beyond) + '.')
    elif judged:
        lines.append(f'- No pair (of {len(judged)}) differs by more than 2 SE: at this number of seeds the variants '
                     'cannot be told apart.')
    else:
        lines.append('- No pair can be judged yet: a standard error needs at least 2 finished seeds per variant.')
    if claims:
        tally: Dict[str, int] = {}
        for c in claims:
            tally[_verdict(c)] = tally.get(_verdict(c), 0) + 1
        chain = ' > '.join('/'.join(f'`{v}`' for v in g) for g in study.claim)
        lines.append(f'- Claimed ordering {chain}: of {len(claims)} claimed relations, ' + ', '.join(
            f'{n} {verdict}' for verdict, n in sorted(tally.items(), key=lambda kv: -kv[1])) + '.')
        n = min(vs.n for vs in done)
        needs = [(c, c.seeds_for_2se(n)) for c in claims if c.se is not None and not c.beyond_2se and c.diff > 0]
        if needs:
            c, k = max(needs, key=lambda ck: ck[1])
            lines.append(f'- If the observed differences were the true ones and the spread stayed the same, the '
                         f'unresolved claimed relations would reach 2 SE with about {min(k for _, k in needs)}–{k} '
                         f'seeds per variant (the hardest: `{c.a}` vs `{c.b}`, {c.diff:+.{d}f}{unit}); see the last '
                         'column of the claim table.')
    lines.append('- 2 SE is a screen, not a significance test: with few seeds the standard errors are themselves '
                 'noisy, and the "best epoch" column is picked on the test set (optimistic).')
    return lines


def _mean_std(values: List[float], digits: int) -> str:
    if not values:
        return '–'
    return f'{statistics.mean(values):.{digits}f} ± {_f(statistics.stdev(values) if len(values) > 1 else None, digits)}'


def _more_metrics(study: Study, stats: List[VariantStats]) -> List[str]:
    """Every final metric of the task (AP, AP50, AP75, APs, APm of detection) as mean ± std per variant."""
    t = study.task
    if not t.metrics_note or not any(vs.n for vs in stats):
        return []
    keys = [t.final_key, t.second_key, *t.extra_keys]
    out = ['', f'## All final {t.label} metrics', '', 'Mean ± sample standard deviation over the finished seeds '
           f'({t.metrics_note}).', '',
           '| variant | seeds | ' + ' | '.join(k.removeprefix('test_') for k in keys) + ' |',
           '|---|---:|' + '---:|' * len(keys)]
    for vs in stats:
        cells = [_mean_std([r[k] for r in vs.results if r.get(k) is not None], t.digits) for k in keys]
        out.append(f'| `{vs.variant}` | {vs.n} | ' + ' | '.join(cells) + ' |')
    return out


def _floor(study: Study, stats: List[VariantStats]) -> List[str]:
    """Whether every run reached the config's ``floor`` (the least a run of a recipe that trains must reach)."""
    if not study.floor:
        return []
    below = [(vs.variant, r['seed'], k, r.get(k)) for vs in stats for r in vs.results for k, least in
             study.floor.items() if r.get(k) is None or r[k] < least]
    n = sum(vs.n for vs in stats)
    rule = ', '.join(f'{k.removeprefix("test_")} ≥ {v}' for k, v in study.floor.items())
    if not below:
        return ['', f'**Floor:** every one of the {n} finished runs reached {rule}.']
    return ['', f'**Floor: {len(below)} of {n} finished runs fell below {rule}** (the recipe does not train every '
            'run, and means over such runs measure luck): ' + '; '.join(
                f'`{v}` seed {s} {k.removeprefix("test_")} {_f(x, study.task.digits)}' for v, s, k, x in below) + '.']


def _init_rule(recipe: Dict[str, Any]) -> str:
    value = (recipe.get('model_kwargs') or {}).get('zero_init_last')
    if value is None:
        return ('**not one rule**: `zero_init_last` is not set in the recipe\'s `model_kwargs`, so each model keeps '
                'its own default (timm\'s ResNets zero-initialise, banet\'s BA models do not)')
    return (f'`zero_init_last: {str(value).lower()}` for every backbone: the last norm of every block starts at '
            + ('zero' if value else 'one (no backbone zero-initialises it)'))


def _pretraining(study: Study, stats: List[VariantStats]) -> List[str]:
    """The pretraining study behind the backbones: its top-1, params, MACs and time per backbone, the init rule."""
    if study.pretrain is None:
        return []
    pre = study.pretrain
    recipe = study_recipe(pre)
    out = ['', '## Pretraining', '',
           f'Every backbone was pretrained once by the classification study `{pre.name}` '
           f'(`{Path(os.path.relpath(pre.path)).as_posix()}`, seed {pre.seeds[0]}, its report: '
           f'`{_rel(pre.report, study.report.parent)}`) and every run above fine-tuned from that run\'s `last/` '
           f'checkpoint. Initialisation rule of the pretraining: {_init_rule(recipe)}.', '',
           f'| backbone | pretraining {pre.task.label} | params (classifier) | MMACs (at {recipe.get("img_size")} px) | '
           f'pretraining (min) | fine-tuning (min, mean per run) |', '|---|---:|---:|---:|---:|---:|']
    pretrained = {r['variant']: r for v in collect(pre)[0] for r in v.results if r['seed'] == pre.seeds[0]}
    for vs in stats:
        r = pretrained.get(vs.variant)
        tune = statistics.mean(x['wall_time_s'] for x in vs.results) / 60 if vs.n else None
        if r is None:
            out.append(f'| `{vs.variant}` | (not pretrained yet) | – | – | – | {_f(tune, 1)} |')
            continue
        macs = '–' if r['macs'] is None else f'{r["macs"] / 1e6:.1f}'
        out.append(f'| `{vs.variant}` | {r[pre.task.final_key]:.{pre.task.digits}f} | {r["params"]:,} | {macs} | '
                   f'{r["wall_time_s"] / 60:.1f} | {_f(tune, 1)} |')
    return out


def render_markdown(study: Study, stats: List[VariantStats], ignored: List[Path], figures: Dict[str, Path],
                    hand_written: str = _PLACEHOLDER) -> str:
    """The whole report as markdown (paths relative to the report's folder)."""
    here = study.report.parent
    t = study.task
    d = t.digits
    machines = _machines(stats)
    pairs = [compare(a, b) for a, b in itertools.combinations(stats, 2)]
    by_name = {vs.variant: vs for vs in stats}
    claims = [compare(by_name[a], by_name[b]) for gi, gj in itertools.combinations(range(len(study.claim)), 2)
              for a in study.claim[gi] for b in study.claim[gj]]
    seeds = ', '.join(map(str, study.seeds))
    out = [
        f'# {study.title}', '',
        f'Generated by `banet study {Path(os.path.relpath(study.path)).as_posix()} --report` on '
        f'{time.strftime("%Y-%m-%d %H:%M")} from the result files in `{_rel(study.results, here)}/`. Regenerating '
        'rewrites everything except the hand-written section at the end.', '',
        '## Recipe', '',
        f'Task `{t.name}`, the variants set `{t.variant_key}`; identical for every variant; seeds {seeds}. Options '
        'not listed are the task\'s trainer\'s defaults (the full resolved recipe is stored in every result file, '
        'and results of another recipe are refused).', '',
        '```yaml', yaml.safe_dump(study.recipe, sort_keys=False).rstrip(), '```', '',
        f'## Test {t.label}', '',
        f'Final-epoch {t.label} on the evaluation split'
        + (' (Fashion-MNIST/CIFAR: the official test set)' if t.name == 'classify' else '') + '; mean ± sample '
        'standard deviation over seeds, SE = std/√n. ' + ('MACs at the trained input size and channels; ' if
                                                          t.name == 'classify' else 'Params of the whole model; ')
        + 'train img/s is the median over epochs and seeds; wall time is the mean per run.', '',
        f'| variant | seeds | {t.label} mean ± std | SE | per seed | {t.second_label} mean | best-epoch {t.label} '
        '(mean) | params | MMACs | train img/s | wall (min) | machine |',
        '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|',
    ]
    for vs in stats:
        if not vs.n:
            out.append(f'| `{vs.variant}` | 0/{vs.configured} (no results yet) |' + ' – |' * 10)
            continue
        r0 = vs.results[0]
        status = f'{vs.n}/{vs.configured}' + ('' if vs.n == vs.configured else ' **incomplete**')
        per_seed = ', '.join(f'{r[t.final_key]:.{d}f} (s{r["seed"]})' for r in vs.results)
        second = [r[t.second_key] for r in vs.results if r.get(t.second_key) is not None]
        best = statistics.mean(r[f'{t.final_key}_best'] for r in vs.results)
        macs = '–' if r0['macs'] is None else f'{r0["macs"] / 1e6:.1f}'
        img_s = statistics.median(r['train_img_s'] for r in vs.results)
        wall = statistics.mean(r['wall_time_s'] for r in vs.results) / 60
        resumed = '†' if any(r['resumed_from_epoch'] for r in vs.results) else ''
        labels = sorted({r['machine_label'] for r in vs.results})
        out.append(f'| `{vs.variant}` | {status} | {vs.mean:.{d}f} ± {_f(vs.std, d)} | {_f(vs.se, d)} | {per_seed} | '
                   f'{_f(statistics.mean(second) if second else None, d)} | '
                   f'{best:.{d}f} | {r0["params"]:,} | {macs} | {img_s:.0f} | {wall:.1f}{resumed} | '
                   f'{", ".join(labels)}{" (mixed: compare speeds per run below)" if len(labels) > 1 else ""} |')
    if any(r['resumed_from_epoch'] for vs in stats for r in vs.results):
        out += ['', '† includes resumed runs: their wall time counts only the last sitting.']
    out += _more_metrics(study, stats) + _floor(study, stats) + _pretraining(study, stats)
    out += ['', '## Pairwise comparison', '',
            f'Difference of the mean final {t.label} (row variant A minus B{", percentage points" if t.unit else ""}), '
            'its standard error '
            '√(SE_A² + SE_B²), and whether |diff| > 2·SE.', '',
            '| A | B | mean A − B | SE | \\|diff\\| > 2·SE |', '|---|---|---:|---:|:---:|']
    for c in pairs:
        flag = '–' if c.beyond_2se is None else ('**yes**' if c.beyond_2se else 'no')
        out.append(f'| `{c.a}` | `{c.b}` | {_f(c.diff, d, sign=True)} | {_f(c.se, d)} | {flag} |')
    if claims:
        n = min((vs.n for vs in stats if vs.n), default=0)
        out += ['', '## The claimed ordering', '',
                'The config\'s `claim` (best first): ' + ' > '.join('/'.join(f'`{v}`' for v in g)
                                                                     for g in study.claim)
                + f'. Each row is one claimed relation A > B. Last column: seeds per variant at which the observed '
                  f'difference would be 2 SE (now {n}), if difference and spread stayed as observed.', '',
                '| claim | mean A − B | SE | verdict | seeds for 2 SE |', '|---|---:|---:|---|---:|']
        for c in claims:
            k = c.seeds_for_2se(n) if c.se is not None and not c.beyond_2se and c.diff and c.diff > 0 else None
            out.append(f'| `{c.a}` > `{c.b}` | {_f(c.diff, d, sign=True)} | {_f(c.se, d)} | {_verdict(c)} | '
                       f'{k if k is not None else "–"} |')
    out += ['', '## What the numbers say', '', '_Generated from the result files._', '',
            *_summary(study, stats, pairs, claims)]
    if figures:
        out += ['', '## Figures', '']
        out += [f'![{what}]({_rel(path, here)})' for what, path in figures.items()]
    out += ['', '## Machines', '', '| label | device | CPU | GPU | cores | torch threads | torch | timm | runs |',
            '|---|---|---|---|---:|---:|---|---|---:|']
    for label, m in machines.values():
        runs = [r for vs in stats for r in vs.results if r['machine_label'] == label]
        out.append(f'| {label} | {", ".join(sorted({r["device"] for r in runs}))} | {m.get("cpu", "?")} | '
                   f'{m.get("gpu", "–")} | {m.get("cpu_count", "?")} | {m.get("torch_threads", "?")} | '
                   f'{m.get("torch", "?")} | {m.get("timm", "?")} | {len(runs)} |')
    out += ['', '## Runs', '', f'| variant | seed | final {t.label} | best {t.label} | epochs | train img/s | '
            'wall (min) | machine | finished | result |', '|---|---:|---:|---:|---:|---:|---:|---|---|---|']
    for vs in stats:
        for r in vs.results:
            resumed = f' † (from epoch {r["resumed_from_epoch"]})' if r['resumed_from_epoch'] else ''
            out.append(f'| `{vs.variant}` | {r["seed"]} | {r[t.final_key]:.{d}f} | {r[f"{t.final_key}_best"]:.{d}f} | '
                       f'{r["epochs"]} | {r["train_img_s"]:.0f} | {r["wall_time_s"] / 60:.1f}{resumed} | '
                       f'{r["machine_label"]}: {_device_words(r["device"], r["machine"])} | {r["finished"]} | '
                       f'[json]({_rel(r["file"], here)}) |')
    if ignored:
        out += ['', f'Ignored (not runs of this config): {", ".join(f"`{_rel(p, here)}`" for p in ignored)}.']
    out += ['', '## Reading', '', BEGIN, hand_written, END, '']
    return '\n'.join(out)


def _plot(study: Study, stats: List[VariantStats]) -> Dict[str, Path]:
    """Mean curves of the task's metric and a bar chart of its final value (± std, seeds as dots); {} without
    results."""
    done = [vs for vs in stats if vs.n]
    if not done:
        return {}
    t = study.task
    folder, stem = study.report.parent, study.report.stem
    figures = {f'test {t.label} curves': folder / f'{stem}_curves.png',
               f'final test {t.label}': folder / f'{stem}_bars.png'}

    from matplotlib.ticker import MaxNLocator
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    last = max(e for vs in done for r in vs.results for e in r['curve']['epoch'])
    for vs in done:
        by_epoch: Dict[int, List[float]] = {}
        for r in vs.results:
            for e, acc in zip(r['curve']['epoch'], r['curve'][t.metric]):
                if acc is not None:
                    by_epoch.setdefault(e, []).append(acc)
        epochs = sorted(e for e, accs in by_epoch.items() if len(accs) == vs.n)
        for ax, shown in zip(axes, (epochs, [e for e in epochs if e > last // 2] or epochs)):
            ax.plot(shown, [statistics.mean(by_epoch[e]) for e in shown], marker='o', ms=3,
                    label=f'{vs.variant} (n={vs.n})')
    for ax, title in zip(axes, ('all epochs', 'second half (zoomed)')):
        ax.set(xlabel='epoch', ylabel=f'test {t.label}', title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f'{study.name}: test {t.label}, mean over seeds', fontsize=10)
    fig.tight_layout()
    save_figure(fig, figures[f'test {t.label} curves'])

    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = range(len(done))
    ax.bar(x, [vs.mean for vs in done], yerr=[vs.std or 0 for vs in done], capsize=5, color='#8fb3d9',
           edgecolor='#30507a')
    for i, vs in enumerate(done):
        ax.plot([i] * vs.n, [r[t.final_key] for r in vs.results], 'k.', ms=5)
    values = [r[t.final_key] for vs in done for r in vs.results]
    values += [vs.mean + s * (vs.std or 0) for vs in done for s in (-1, 1)]
    margin = (max(values) - min(values)) / 2 or 1.0
    ax.set_ylim(min(values) - margin, max(values) + margin)
    ax.set_xticks(list(x), [f'{vs.variant} (n={vs.n})' for vs in done], fontsize=7, rotation=20, ha='right')
    ax.set(ylabel=f'final test {t.label}',
           title=f'{study.name}: mean ± std over seeds, dots = seeds (y axis does not start at 0)')
    ax.title.set_fontsize(9)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    save_figure(fig, figures[f'final test {t.label}'])
    return figures


def write_report(study: Study) -> Path:
    """Aggregate the result files of ``study`` into ``study.report`` (markdown) and its two PNGs."""
    stats, ignored = collect(study)
    figures = _plot(study, stats)
    text = render_markdown(study, stats, ignored, figures, _hand_written(study.report))
    return atomic_write(study.report, lambda tmp: Path(tmp).write_text(text))
