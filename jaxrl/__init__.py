"""jaxrl: JAX-functional, accelerator-first reinforcement learning.

Every algorithm is a pure, jit-compiled, vmappable function::

    import jax, jaxrl
    cfg = jaxrl.PPOConfig(env="CartPole-v1")
    state, metrics = jaxrl.train(cfg, jax.random.key(0))
    returns = jaxrl.evaluate(cfg, state, jax.random.key(1), num_episodes=32)
"""

from jaxrl import envs, losses
from jaxrl.algos.a2c import Config as A2CConfig
from jaxrl.algos.dqn import Config as DQNConfig
from jaxrl.algos.grpo import CharTokenizer, Problem, Task, register_reward_source, register_task
from jaxrl.algos.grpo import Config as GRPOConfig
from jaxrl.algos.ppo import Config as PPOConfig
from jaxrl.algos.qlearning import Config as QLearningConfig
from jaxrl.algos.reinforce import Config as ReinforceConfig
from jaxrl.algos.reward_model import Config as RewardModelConfig
from jaxrl.algos.sac import Config as SACConfig
from jaxrl.algos.stacking import stack_configs
from jaxrl.api import make_policy, make_value_fn, train
from jaxrl.evaluation import evaluate
from jaxrl.runtime.driver import load_state, resume, run
from jaxrl.version import __version__ as __version__

__all__ = [
    "A2CConfig",
    "ReinforceConfig",
    "CharTokenizer",
    "DQNConfig",
    "GRPOConfig",
    "Problem",
    "Task",
    "register_reward_source",
    "register_task",
    "QLearningConfig",
    "RewardModelConfig",
    "SACConfig",
    "PPOConfig",
    "envs",
    "evaluate",
    "losses",
    "make_policy",
    "load_state",
    "make_value_fn",
    "resume",
    "run",
    "stack_configs",
    "train",
]
