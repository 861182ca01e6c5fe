"""The kernels inductor generates for one training step of a plain, an SE and a BA residual block, in call order.

Answers the speed issue's question "are the bridge's poolings fused into the BN/ReLU kernels and the gate into the
residual add?" from the generated code itself (``torch._inductor.utils.run_and_get_code``): each line is a call of
the forward or backward graph, either a fused C++ kernel (inductor names it after the ops it fused) or an external
one (convolutions, matrix products).

    PYTHONPATH=src python benchmarks/inductor_kernels.py --block basic --output docs/benchmarks/inductor_kernels.txt
"""
import argparse
import re

import torch
from timm.layers import SEModule
from timm.models.resnet import BasicBlock, Bottleneck
from torch._inductor.utils import run_and_get_code

from banet.models.ba_resnet import BABasicBlock, BABottleneck

_CALL = re.compile(r'^\s+(?:\w+ = )?(cpp_fused_\w+|extern_kernels\.\w+|aten\.\w+\.\w+|torch\.ops\.aten\.\w+\.\w+)\(', re.M)


def kernel_calls(block: torch.nn.Module, x: torch.Tensor) -> list[list[str]]:
    """The kernel calls of each compiled graph (forward, backward) of ``block(x).sum().backward()``."""
    compiled = torch.compile(block)

    def step():
        compiled(x).sum().backward()

    _, sources = run_and_get_code(step)
    return [[m.group(1) for m in _CALL.finditer(src)] for src in sources]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--block', choices=('basic', 'bottleneck'), default='basic')
    p.add_argument('--channels', type=int, default=32)
    p.add_argument('--size', type=int, default=14)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--output', default=None, help='text file for the listing (default: print only)')
    args = p.parse_args()
    c = args.channels
    if args.block == 'basic':
        blocks = {'plain': BasicBlock(c, c), 'se': BasicBlock(c, c, attn_layer=SEModule), 'ba': BABasicBlock(c, c)}
    else:
        blocks = {'plain': Bottleneck(4 * c, c), 'se': Bottleneck(4 * c, c, attn_layer=SEModule),
                  'ba': BABottleneck(4 * c, c)}
    lines = [f'# {args.block} block, {c} channels, batch {args.batch_size}, {args.size} px, float32, '
             f'torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}']
    for name, block in blocks.items():
        torch.manual_seed(0)
        x = torch.randn(args.batch_size, block.conv1.in_channels, args.size, args.size, requires_grad=True)
        for graph, calls in zip(('forward', 'backward'), kernel_calls(block.train(), x)):
            fused = sum(c.startswith('cpp_fused') for c in calls)
            lines.append(f'\n## {name} {graph}: {len(calls)} calls, {fused} fused kernels')
            lines += [f'  {c}' for c in calls]
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
