"""``banet study``: several models × seeds under one recipe, resumable, then a markdown report with figures."""
import argparse

from ..errors import BanetError
from ..study import load_study, run_study, write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        'study', help='train variants x seeds under one recipe and report mean ± std (resumable)',
        description='Train every (variant, seed) of a study config with banet train\'s own training loop, one '
                    'result file per finished run, then write the markdown report with figures. Runs with a result '
                    'file are skipped; an interrupted run continues from its last checkpoint. See docs/study.md.')
    p.add_argument('config', metavar='CONFIG.yaml', help='study config: variants, seeds, recipe, output, results, '
                                                         'report (e.g. configs/study/fashion_mnist.yaml)')
    p.add_argument('--report', action='store_true', help='only aggregate the existing result files into the report')
    p.add_argument('--no-report', action='store_true', help='train, but do not write the report at the end')
    p.add_argument('--dry-run', action='store_true', help='check everything and list the runs, train nothing')
    g = p.add_argument_group('a subset (to split the study over sittings or machines)')
    g.add_argument('--variants', nargs='+', default=None, metavar='MODEL', help='only these variants of the config')
    g.add_argument('--seeds', nargs='+', type=int, default=None, metavar='SEED', help='only these seeds of the config')
    g = p.add_argument_group('this machine (not part of the recipe)')
    g.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: the recipe\'s, else cuda when '
                                                  'available)')
    g.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: the recipe\'s)')
    g.add_argument('--data-dir', default=None, metavar='DIR', help='dataset root on this machine')
    g.add_argument('--pretrain-data-dir', default=None, metavar='DIR',
                   help='dataset root of the pretraining study (a detect/segment study with pretrain:)')
    g.add_argument('--progress', action=argparse.BooleanOptionalAction, default=None, help='progress bars')
    g.add_argument('--output', default=None, metavar='DIR', help='run folders (default: the config\'s output)')
    g.add_argument('--results', default=None, metavar='DIR', help='result files (default: the config\'s results)')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.report and (args.no_report or args.dry_run):
        raise BanetError('--report only writes the report: leave out --no-report and --dry-run')
    study = load_study(args.config, args.output, args.results)
    if not args.report:
        machine = dict(device=args.device, threads=args.threads, data_dir=args.data_dir, progress=args.progress,
                       pretrain_data_dir=args.pretrain_data_dir)
        if study.pretrain is None and args.pretrain_data_dir:
            raise BanetError(f'--pretrain-data-dir: {args.config} has no pretrain: study')
        run_study(study, args.variants, args.seeds, machine, dry_run=args.dry_run)
    if args.report or not (args.no_report or args.dry_run):
        if study.pretrain is not None:
            print(f'pretraining report: {write_report(study.pretrain)}')
        print(f'report: {write_report(study)}')
    return 0
