#!/bin/bash
# SAC on envpool:HalfCheetah-v4, started 2026-12-04 by helper "struct" (issue #23); code at the commit in git.txt
cd /work/struct_runs
git -C /work/wt/struct rev-parse HEAD > /work/struct_runs/git.txt
PYTHONPATH=/work/struct_runs/src exec nice -n 10 /work/venv/bin/python -c "import sys; from jaxrl.cli import main; sys.exit(main())" \
  train --algo sac --env envpool:HalfCheetah-v4 \
  --set total_timesteps=200000 buffer_size=200000 learning_starts=5000 hidden=256,256 activation=relu \
        learning_rate=3e-4 tau=0.005 gamma=0.99 minibatch_size=256 \
  --out /work/struct_runs/sac-halfcheetah --chunk-size 1000 --eval-every 10000 --eval-episodes 2 --seed 0
