"""``import jaxrl`` stays light: optional backends and runtime extras are imported only when used."""

import json
import subprocess
import sys

HEAVY = ("envpool", "orbax", "tensorboard", "tensorboardX", "wandb", "matplotlib")

# One subprocess (a fresh interpreter), three stages; after each, the heavy modules loaded so far.
PROBE = f"""
import json, sys
def heavy():
    return sorted(m for m in sys.modules if m.split('.')[0] in {list(HEAVY)!r})
stages = {{}}
import jaxrl
stages['import jaxrl'] = heavy()
from jaxrl.algos import base, registry
registry.algorithms(); jaxrl.PPOConfig()
stages['algorithms'] = heavy()
from jaxrl import envs
envs.make('CartPole-v1', 2); envs.available_names()
stages['gymnax env'] = heavy()
print(json.dumps(stages))
"""


def test_import_jaxrl_does_not_import_optional_packages():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    stages = json.loads(out.stdout.strip().splitlines()[-1])
    assert stages["import jaxrl"] == []
    assert stages["algorithms"] == []  # importing every registered algorithm stays light too
    # gymnax itself imports matplotlib (its bsuite package does) once an environment is built; the
    # optional backends and runtime extras must still stay out.
    assert [m for m in stages["gymnax env"] if not m.startswith("matplotlib")] == []
