"""Parameter/MAC counting and the profile command."""
import json

import pytest

from banet.cli import main
from banet.measure.profile import profile_model


def test_resnet50_matches_published_counts():
    # torchvision's model card: 25,557,032 params and 4.09 GFLOPS (counted as multiply-adds) at 224 px
    row = profile_model('resnet50')
    assert row['params'] == 25_557_032
    assert round(row['macs'] / 1e9, 2) == 4.09


def test_bridge_adds_little_compute():
    plain, ba = profile_model('resnet20_cifar'), profile_model('ba_resnet20_cifar')
    assert 0 < ba['macs'] - plain['macs'] < 0.01 * plain['macs']
    assert ba['params'] > plain['params']


def test_cli_profile_json_and_markdown(capsys):
    assert main(['profile', 'ba_resnet20_cifar', '--img-size', '28', '--format', 'json']) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]['model'] == 'ba_resnet20_cifar' and rows[0]['img_size'] == 28
    assert main(['profile', 'ba_resnet20_cifar']) == 0
    assert '| `ba_resnet20_cifar` | 32 |' in capsys.readouterr().out


def test_cli_profile_unknown_model(capsys):
    assert main(['profile', 'no_such_net']) == 2
    assert "unknown model(s) ['no_such_net']" in capsys.readouterr().err
