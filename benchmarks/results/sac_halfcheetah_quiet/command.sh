#!/bin/bash
# SAC on envpool:HalfCheetah-v4, lead's quiet run 2026-12-04 16:27-16:48 UTC (main at 9c40130), stopped at 76k
# of 100k env steps for the session's end; curve.png made by plotting metrics.csv and eval.csv.
PYTHONPATH=$PWD python -c "import sys; from jaxrl.cli import main; sys.exit(main())" \
  train --algo sac --env envpool:HalfCheetah-v4 \
  --set total_timesteps=100000 buffer_size=100000 learning_starts=5000 hidden=256,256 activation=relu \
        learning_rate=3e-4 tau=0.005 gamma=0.99 minibatch_size=256 \
  --out runs/sac-halfcheetah --chunk-size 1000 --eval-every 10000 --eval-episodes 2 --seed 0
